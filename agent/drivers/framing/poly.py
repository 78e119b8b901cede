"""Poly RealPresence Group Series RS-232 (Control mode) framing.

Replies end CR LF; an action is acknowledged by the echo of the command. Unasked lines are
notifications: ``cs: call[34] chan[0] dialstr[…] state[RINGING]``, ``active: call[34] speed
[384]``, ``cleared: call[34]``, ``ended: call[34]``, ``notification:callstatus:…``, and the
sleep/wake notifications after ``sleep register`` (format unconfirmed: ``sleep``/``wake``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.drivers.base import BadReply, CallInfo
from agent.drivers.framing.lines import Garbage, LineParser


@dataclass(frozen=True)
class Line:
    """A plain line: an echo, ``sleep registered``, ``callinfo begin``…"""

    text: str


@dataclass(frozen=True)
class CallLine:
    """``callinfo:<id>:<name>:<number>:<speed>:<connected>:<muted>:<direction>:<type>``."""

    call: CallInfo


@dataclass(frozen=True)
class NotInCall:
    """``system is not in a call``."""


@dataclass(frozen=True)
class PolyError:
    """``error: …`` (e.g. ``error: this command is not supported on this model``)."""

    text: str


@dataclass(frozen=True)
class CallEvent:
    """A call-state notification; ``kind`` is cs / active / cleared / ended / callstatus."""

    kind: str
    call_id: str
    state: str
    raw: str


@dataclass(frozen=True)
class PasswordPrompt:
    """``Password:`` waiting for the admin password."""


Frame = Line | CallLine | NotInCall | PolyError | CallEvent | PasswordPrompt | Garbage

_EVENT = re.compile(r"^(cs|active|cleared|ended):\s*call\[(\w+)\](.*)$")
_STATE = re.compile(r"state\[(\w+)\]")


def classify(text: str) -> Frame:
    """One line as a frame."""
    s = text.strip()
    low = s.lower()
    if low.startswith("error:"):
        return PolyError(s[6:].strip())
    if low == "system is not in a call":
        return NotInCall()
    if low.startswith("callinfo:"):
        parts = s.split(":")
        if len(parts) >= 9 and parts[1]:
            number = ":".join(parts[3:-5])
            return CallLine(CallInfo(id=parts[1], status=parts[-4], remote=parts[2] or number,
                                     direction=parts[-2].lower()))
        return Line(s)
    if m := _EVENT.match(s):
        st = _STATE.search(m[3])
        state = st[1] if st else {"active": "ACTIVE", "cleared": "CLEARED",
                                  "ended": "ENDED"}.get(m[1], "")
        return CallEvent(m[1], m[2], state, s)
    if low.startswith("notification:callstatus:"):
        parts = s.split(":")
        cid = parts[3] if len(parts) > 3 else ""
        state = parts[6] if len(parts) > 6 else ""
        return CallEvent("callstatus", cid, state, s)
    return Line(s)


class PolyParser(LineParser[Frame]):
    """Bytes → Poly frames (the ``Password:`` prompt ends without a newline)."""

    def __init__(self) -> None:
        super().__init__(classify)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames they complete."""
        out: list[Frame] = super().feed(data)
        if self._lines.partial.rstrip().lower().endswith("password:"):
            out.append(PasswordPrompt())
            self._lines.discard_partial()
        return out


class CallInfoCollector:
    """Collect the answer to ``callinfo all``: :meth:`add` returns ``(CallInfo|None,)``.

    Garbage after ``callinfo begin``, or a ``callinfo end`` without its begin (the begin line
    was lost), raises :class:`BadReply`: the list lost a line, and "no call" would be a guess.
    """

    def __init__(self) -> None:
        self.calls: list[CallInfo] = []
        self._begun = False

    def add(self, frame: Frame) -> tuple[CallInfo | None] | None:
        """Take one frame; a tuple when the answer is complete."""
        if isinstance(frame, Garbage):
            if self._begun:
                raise BadReply(f"unreadable line inside callinfo: {frame.raw[:40]!r}")
            return None
        if isinstance(frame, NotInCall):
            return (None,)
        if isinstance(frame, CallLine):
            self.calls.append(frame.call)
        elif isinstance(frame, Line):
            low = frame.text.lower()
            if low == "callinfo begin":
                self._begun = True
            elif low == "callinfo end":
                if not self._begun:
                    raise BadReply("'callinfo end' without 'callinfo begin'")
                return (self.calls[0] if self.calls else None,)
            elif self._begun and low.startswith("callinfo"):
                raise BadReply(f"unreadable callinfo line {frame.text!r}")
        return None
