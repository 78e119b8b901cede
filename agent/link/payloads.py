"""Schemas for what the district sends a room: commands and the schedule.

Wire data is validated strictly (a misspelt ``overide`` must not silently switch a locked room
off); every problem is returned as ``field: message`` so the reply can say exactly why.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.core.events import Command, ScheduleReceived, Window

MAX_PAYLOAD = 256 * 1024
MAX_DEPTH = 16
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")]


class PayloadError(ValueError):
    """A payload that cannot be used; ``problems`` says why, one item per field."""

    def __init__(self, problems: list[str], command_id: str | None = None) -> None:
        self.problems = problems
        self.command_id = command_id
        super().__init__("; ".join(problems))


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=512)


class PowerArgs(_Wire):
    """Switch the room (in order) or one device; switching off a locked room needs
    ``override: true`` and is recorded as ``lock_overridden``."""

    on: StrictBool
    device: str | None = Field(None, max_length=32)
    override: StrictBool = False


class StartWindowArgs(_Wire):
    """A window starting now (default 60 min): the room locks and powers up; a schedule
    that later names the same ``window_id`` takes it over."""

    kind: Literal["test", "session"] = "test"
    window_id: Id | None = None
    title: str = Field("", max_length=200)
    duration_min: float = Field(60, gt=0, le=24 * 60)


class CompleteWindowArgs(_Wire):
    """The centre declares the window finished: the lock ends (the room switches itself
    off ``timing.off_after_release_min`` later)."""

    window_id: Id


class OperatorCheckArgs(_Wire):
    """"Is anyone there?": the status light asks for a button press until ``timeout_s``
    (default ``timing.check_timeout_s``)."""

    timeout_s: float | None = Field(None, ge=5, le=3600)


class NoArgs(_Wire):
    """A command without arguments."""


class RequestStateArgs(NoArgs):
    """Publish the state message now (it is retained: a reader normally has it already)."""


class AnswerHelpArgs(_Wire):
    """The centre has seen the operator's help request: ``operator.help_requested`` clears."""

    note: str = Field("", max_length=200, description="What the centre says it will do")


ARGS: dict[str, type[_Wire]] = {
    "power": PowerArgs,
    "start_window": StartWindowArgs,
    "complete_window": CompleteWindowArgs,
    "operator_check": OperatorCheckArgs,
    "request_state": RequestStateArgs,
    "answer_help": AnswerHelpArgs,
}


class CommandEnvelope(_Wire):
    id: Id
    name: str = Field(max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)
    sender: str = Field("", max_length=128)
    site: str | None = Field(None, max_length=64, description="If given, must be this room")
    ts: AwareDatetime | None = Field(None, description="ISO 8601 with its UTC offset")


MAX_PROBLEMS = 20
MAX_LOC = 100


def _problems(e: ValidationError, prefix: str = "") -> list[str]:
    # Bounded, so that a reply or a schedule_rejected event always fits the broker's size limit
    # (a 256 KiB payload can hold tens of thousands of unknown keys, some of them huge).
    errors = e.errors(include_input=False, include_url=False)
    out = []
    for err in errors[:MAX_PROBLEMS]:
        loc = ".".join(str(p) for p in err["loc"])
        if len(loc) > MAX_LOC:
            loc = loc[:MAX_LOC] + "…"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        out.append(f"{prefix}{loc or '(payload)'}: {msg}")
    if len(errors) > MAX_PROBLEMS:
        out.append(f"(payload): {len(errors) - MAX_PROBLEMS} more problems not listed")
    return out


def _depth(obj: Any, limit: int) -> int:
    stack = [(obj, 1)]
    deepest = 0
    while stack:
        cur, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(cur, dict):
            stack.extend((v, d + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, d + 1) for v in cur)
    return deepest


def decode_json(payload: bytes) -> Any:
    """JSON from a payload, or :class:`PayloadError` for size, encoding, syntax or nesting."""
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError([f"(payload): {len(payload)} bytes is over the {MAX_PAYLOAD} limit"])
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError([f"(payload): not UTF-8 (byte {e.start})"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PayloadError([f"(payload): not JSON: {e.msg} at line {e.lineno} column {e.colno}"]
                           ) from None
    except RecursionError:
        raise PayloadError([f"(payload): nested deeper than {MAX_DEPTH} levels"]) from None
    except ValueError as e:  # e.g. an integer literal over Python's 4300-digit limit
        raise PayloadError([f"(payload): not usable JSON: {str(e).split(':')[0]}"]) from None
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise PayloadError([f"(payload): nested deeper than {MAX_DEPTH} levels"])
    if "\\u" in text and _lone_surrogate(data):
        # A "\ud800" escape decodes to a string that cannot be encoded again: any reply or
        # event quoting it would fail to be sent.
        raise PayloadError(["(payload): not UTF-8 (a lone surrogate \\u escape)"])
    return data


def _bad_str(s: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in s)


def _lone_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, str):
            if _bad_str(cur):
                return True
        elif isinstance(cur, dict):
            stack.extend(cur.keys())
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return False


def _id_of(data: Any) -> str | None:
    cid = data.get("id") if isinstance(data, dict) else None
    return cid if isinstance(cid, str) and 0 < len(cid) <= 64 and not _bad_str(cid) else None


def _peek_id(payload: bytes) -> str | None:
    """The command id of a payload that is otherwise unusable, so the reply can name it."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        return _id_of(json.loads(payload.decode("utf-8")))
    except (ValueError, RecursionError):
        return None


def parse_command(payload: bytes, site: str) -> Command:
    """A :class:`Command` from a command message, or :class:`PayloadError` saying why."""
    try:
        data = decode_json(payload)
    except PayloadError as e:
        e.command_id = _peek_id(payload)
        raise
    cid = _id_of(data)
    try:
        env = CommandEnvelope.model_validate(data)
    except ValidationError as e:
        raise PayloadError(_problems(e), cid) from None
    if env.site is not None and env.site != site:
        raise PayloadError([f"site: this is room '{site}', not '{env.site}'"], env.id)
    model = ARGS.get(env.name)
    if model is None:
        raise PayloadError([f"name: unknown command '{env.name}'; known: {', '.join(ARGS)}"],
                           env.id)
    try:
        args = model.model_validate(env.args)
    except ValidationError as e:
        raise PayloadError(_problems(e, "args."), env.id) from None
    return Command(id=env.id, name=env.name, args=args.model_dump(exclude_none=True),
                   sender=env.sender,
                   issued_at=env.ts.timestamp() if env.ts else None)


class CompletedIn(_Wire):
    at: datetime = Field(description="When the window was marked complete")
    by: str = Field("", max_length=128, description="Who marked it complete")


class WindowIn(_Wire):
    id: Id
    kind: Literal["test", "session"]
    start: datetime
    end: datetime
    title: str = Field("", max_length=200)
    completed: CompletedIn | None = Field(None, description="The window is complete")

    @field_validator("end")
    @classmethod
    def _same_zone_kind(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if isinstance(start, datetime) and (start.tzinfo is None) != (end.tzinfo is None):
            raise ValueError("give both start and end with a UTC offset, or both without one "
                             "(the room's local time); this one has "
                             f"{'no offset' if end.tzinfo is None else 'an offset'} and start "
                             f"{'has one' if end.tzinfo is None else 'has none'}")
        return end

    @model_validator(mode="after")
    def _span(self) -> WindowIn:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            return self  # already reported on end
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.end - self.start).total_seconds() > 24 * 3600:
            raise ValueError("a window may last at most 24 hours")
        return self


class ScheduleIn(_Wire):
    version: str = Field(min_length=1, max_length=64)
    site: str | None = Field(None, max_length=64)
    ts: datetime | None = Field(None, description="When the district published it")
    windows: list[WindowIn] = Field(max_length=500)

    @model_validator(mode="after")
    def _unique(self) -> ScheduleIn:
        seen: set[str] = set()
        for w in self.windows:
            if w.id in seen:
                raise ValueError(f"window id '{w.id}' appears twice")
            seen.add(w.id)
        return self


def _epoch(t: datetime, zone: ZoneInfo) -> float:
    # Times without an offset are the site's local time (Asia/Ho_Chi_Minh unless configured).
    return (t if t.tzinfo is not None else t.replace(tzinfo=zone)).timestamp()


def schedule_digest(payload: bytes) -> str:
    """The schedule's digest, over its bytes exactly as received (the district computes the
    same over the bytes it published): the first 16 hex digits of SHA-256."""
    return hashlib.sha256(payload).hexdigest()[:16]


class ScheduleError(PayloadError):
    """A schedule that cannot be used: ``problems``, and its ``digest`` and ``version`` (the
    version when the payload names a usable one) for the ``schedule_rejected`` event."""

    def __init__(self, problems: list[str], digest: str, version: str | None) -> None:
        super().__init__(problems)
        self.digest = digest
        self.version = version


def _peek_version(data: Any) -> str | None:
    v = data.get("version") if isinstance(data, dict) else None
    return v if isinstance(v, str) and 0 < len(v) <= 64 and not _bad_str(v) else None


def parse_schedule(payload: bytes, site: str, timezone: str) -> ScheduleReceived:
    """The schedule in a schedule message, or :class:`ScheduleError` saying why."""
    digest = schedule_digest(payload)
    try:
        data = decode_json(payload)
    except PayloadError as e:
        raise ScheduleError(e.problems, digest, None) from None
    version = _peek_version(data)
    try:
        sched = ScheduleIn.model_validate(data)
    except ValidationError as e:
        raise ScheduleError(_problems(e), digest, version) from None
    if sched.site is not None and sched.site != site:
        raise ScheduleError([f"site: this is room '{site}', not '{sched.site}'"], digest,
                            version)
    zone = ZoneInfo(timezone)
    windows = tuple(Window(id=w.id, kind=w.kind, start=_epoch(w.start, zone),
                           end=_epoch(w.end, zone), title=w.title) for w in sched.windows)
    completed = tuple((w.id, _epoch(w.completed.at, zone), w.completed.by)
                      for w in sched.windows if w.completed is not None)
    issued = _epoch(sched.ts, zone) if sched.ts is not None else None
    return ScheduleReceived(windows, sched.version, issued, digest=digest, completed=completed)
