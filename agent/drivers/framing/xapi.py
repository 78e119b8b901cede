"""Cisco xAPI (TC/CE/RoomOS) text framing over RS-232.

Lines: ``*s`` status, ``*c`` configuration, ``*r`` command result, ``*e`` event, ``** end``
closing a block, ``OK`` / ``ERROR`` closing a command, ``Command not recognized.``; and the
login prompts ``login:`` / ``Password:``, which end without a newline.

CE/RoomOS prints the block then ``OK``; older TC firmware may print ``OK`` first. The
:class:`ReplyCollector` accepts either order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.drivers.base import BadReply, CallInfo, DeviceRefused, PowerState
from agent.drivers.framing.lines import Garbage, LineParser


@dataclass(frozen=True)
class Status:
    """``*s Standby State: Off`` → path 'Standby State', value 'Off' (quotes removed)."""

    path: str
    value: str


@dataclass(frozen=True)
class Config:
    """``*c xConfiguration …: value``."""

    path: str
    value: str


@dataclass(frozen=True)
class Result:
    """``*r StandbyActivateResult (status=OK):`` (status '' when none is given)."""

    name: str
    status: str


@dataclass(frozen=True)
class Detail:
    """``Reason: "…"`` under a result, indented or as ``*r <Result> Reason: "…"``."""

    key: str
    value: str


@dataclass(frozen=True)
class End:
    """``** end``: the block is complete."""


@dataclass(frozen=True)
class Ok:
    """``OK``: the command is complete."""


@dataclass(frozen=True)
class Error:
    """``ERROR``: the command failed."""


@dataclass(frozen=True)
class NotRecognized:
    """``Command not recognized.`` (or another one-line refusal)."""

    text: str


@dataclass(frozen=True)
class LoginOk:
    """``*r Login successful``."""


@dataclass(frozen=True)
class LoginFailed:
    """``Login incorrect``."""


@dataclass(frozen=True)
class Prompt:
    """``login:`` or ``Password:`` waiting for input (no newline follows)."""

    kind: str   # 'login' | 'password'


@dataclass(frozen=True)
class Event:
    """``*e …`` event line."""

    text: str


@dataclass(frozen=True)
class Text:
    """Any other line: echo of our input, banner, welcome text."""

    text: str


Frame = (Status | Config | Result | Detail | End | Ok | Error | NotRecognized | LoginOk
         | LoginFailed | Prompt | Event | Text | Garbage)

_RESULT = re.compile(r"^\*r (\S+) \(status=(\w+)\):?\s*$")
_RESULT_DETAIL = re.compile(r"^\*r (\S+) (\w+): ?(.*)$")
_DETAIL = re.compile(r"^\s+(\w+): ?(.*)$")
_KEYVAL = re.compile(r"^\*([sc]) (.+?): ?(.*)$")
_REFUSALS = ("command not recognized", "illegal command", "invalid command")


def _unquote(v: str) -> str:
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


def classify(line: str) -> Frame:
    """One text line as a frame."""
    s = line.strip()
    low = s.lower()
    if s == "** end":
        return End()
    if s == "OK":
        return Ok()
    if s == "ERROR":
        return Error()
    if low.startswith(_REFUSALS):
        return NotRecognized(s)
    if low == "*r login successful":
        return LoginOk()
    if low.startswith("login incorrect"):
        return LoginFailed()
    if m := _RESULT.match(s):
        return Result(m[1], m[2])
    if s.startswith("*r ") and (m := _RESULT_DETAIL.match(s)):
        return Detail(m[2], _unquote(m[3]))
    if m := _KEYVAL.match(s):
        return (Status if m[1] == "s" else Config)(m[2], _unquote(m[3]))
    if s.startswith("*e "):
        return Event(s[3:])
    if s.startswith("*r "):
        return Result(s[3:].rstrip(":"), "")
    if (m := _DETAIL.match(line)) and not line.startswith("*"):
        return Detail(m[1], _unquote(m[2]))
    return Text(s)


class XapiParser(LineParser[Frame]):
    """Bytes → xAPI frames, including prompts that end without a newline."""

    def __init__(self) -> None:
        super().__init__(classify, max_line=4096)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames they complete."""
        out: list[Frame] = super().feed(data)
        tail = self._lines.partial.rstrip().lower()
        if tail.endswith("login:"):
            out.append(Prompt("login"))
            self._lines.discard_partial()
        elif tail.endswith("password:"):
            out.append(Prompt("password"))
            self._lines.discard_partial()
        return out


@dataclass
class Reply:
    """One command's answer: its status lines, result and details."""

    statuses: list[Status] = field(default_factory=list)
    result: Result | None = None
    details: dict[str, str] = field(default_factory=dict)

    def value(self, path: str) -> str | None:
        """The value of the first ``*s`` line with this path (case-insensitive)."""
        for s in self.statuses:
            if s.path.lower() == path.lower():
                return s.value
        return None


class ReplyCollector:
    """Feed frames of one command's answer; :meth:`add` returns the :class:`Reply` when done.

    ``block``: the command answers with a ``** end`` block (xStatus, xCommand).
    ``require_ok``: wait for ``OK`` as well (set False for firmware that omits it).
    A :class:`Garbage` frame before the answer is complete raises :class:`BadReply`: the
    block lost a line, and answering without it could be wrong (a call that reads as none).
    """

    def __init__(self, *, block: bool = True, require_ok: bool = True) -> None:
        self.block = block
        self.require_ok = require_ok
        self.reply = Reply()
        self._end = False
        self._ok = False

    def add(self, frame: Frame) -> Reply | None:
        """Take one frame; raise DeviceRefused on an error answer, BadReply on garbage."""
        r = self.reply
        if isinstance(frame, Garbage):
            raise BadReply(f"unreadable line inside the reply: {frame.raw[:40]!r}")
        if isinstance(frame, Status):
            r.statuses.append(frame)
        elif isinstance(frame, Result):
            r.result = frame
        elif isinstance(frame, Detail):
            r.details[frame.key] = frame.value
        elif isinstance(frame, NotRecognized):
            raise DeviceRefused(frame.text, code="not-recognized")
        elif isinstance(frame, Error):
            raise DeviceRefused(self._error_text(), code="error")
        elif isinstance(frame, End):
            self._end = True
        elif isinstance(frame, Ok):
            self._ok = True
        done = ((self._ok or not self.require_ok) and (self._end or not self.block)
                and (self._ok or self._end))
        if done:
            if r.result is not None and r.result.status.lower() == "error":
                raise DeviceRefused(self._error_text(), code="error")
            return r
        return None

    def _error_text(self) -> str:
        r = self.reply
        name = r.result.name if r.result else "command"
        reason = r.details.get("Reason") or r.details.get("reason") or "error"
        return f"{name}: {reason}"


# Halfwake (woken by presence, not in use) and EnteringStandby (on its way, may be stopped)
# are neither surely on nor surely in standby: "unknown", which wait_ready(wake=True) wakes
# and standby_and_confirm does not take as confirmation.
_STANDBY = {"off": "on", "halfwake": "unknown", "standby": "standby",
            "enteringstandby": "unknown"}


def power_from_standby(value: str | None) -> PowerState:
    """``Standby State`` value → power state: Off → on, Standby → standby, Halfwake and
    EnteringStandby → unknown; raises BadReply on a value it does not know."""
    if value is None:
        raise BadReply("no '*s Standby State' line in the reply")
    state = _STANDBY.get(value.strip().lower())
    if state is None:
        raise BadReply(f"unknown standby state {value!r}")
    return state  # type: ignore[return-value]


_CALL = re.compile(r"^Call (\d+) (\w+)$")
_NOT_IN_CALL = {"idle", "disconnecting"}


def call_from_statuses(statuses: list[Status]) -> CallInfo | None:
    """``*s Call <id> <Key>: value`` lines → the first call that is not idle, or None."""
    calls: dict[str, dict[str, str]] = {}
    for s in statuses:
        if m := _CALL.match(s.path):
            calls.setdefault(m[1], {})[m[2]] = s.value
    for cid, keys in calls.items():
        status = keys.get("Status", "")
        if status.lower() in _NOT_IN_CALL:
            continue
        remote = keys.get("DisplayName") or keys.get("RemoteNumber") or keys.get(
            "CallbackNumber", "")
        return CallInfo(id=cid, status=status or "Unknown", remote=remote,
                        direction=keys.get("Direction", "").lower())
    return None
