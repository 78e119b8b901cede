"""The district's commands: what each one does to the room, and when one is refused.

Each handler gets the step it runs in (:class:`agent.core.step._Step`) and the validated
:class:`~agent.core.events.Command`; it replies exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from agent.contract import events as ev
from agent.core.actions import PublishState
from agent.core.events import Command, Window
from agent.core.state import OperatorCheck
from agent.core.view import iso
from agent.core.windows import clock_trusted

if TYPE_CHECKING:
    from agent.core.step import _Step

MAX_PLAUSIBLE_TIME = 4_102_444_800.0  # 2100-01-01: a later stamp comes from a broken clock
FUTURE_SLACK_S = 300.0
STALE_AFTER_S = 600.0
STALE_CHECKED = ("power", "start_window")


def stamp_problem(s: _Step, ts: float | None, name: str
                  ) -> tuple[Literal["invalid", "refused"], str] | None:
    """Why a district time stamp ``ts`` makes a message unusable, or None if it is fine.

    Stamps prove to a room with an unsynchronised clock that time has come (``docs/time.md``),
    so a stamp that cannot be right must not count; with a synchronised clock, an old
    ``power``/``start_window`` (delivered late by a queue) is refused rather than obeyed.
    """
    if ts is None:
        return None
    if not s.settings.plausible_after <= ts <= MAX_PLAUSIBLE_TIME:
        return "invalid", f"ts: {iso(ts) or ts} cannot be right: the sender's clock is wrong"
    if clock_trusted(s.settings, s.st, s.now):
        if ts > s.now + FUTURE_SLACK_S:
            return "invalid", (f"ts: {round(ts - s.now)} s ahead of this room's synchronised "
                               "clock: the sender's clock is wrong")
        if name in STALE_CHECKED and ts < s.now - STALE_AFTER_S:
            return "refused", f"stale: sent {round((s.now - ts) / 60)} min ago; send it again"
    return None


def admit(s: _Step, cmd: Command) -> bool:
    """Whether the command may run: a known name and a believable stamp (replied to if not).
    An admitted command's stamp is proof of the time."""
    problem = stamp_problem(s, cmd.issued_at, cmd.name)
    if problem is not None:
        s.reply(cmd, *problem)
        return False
    if cmd.name not in FACTS and cmd.name not in REQUESTS:
        s.reply(cmd, "invalid",
                f"unknown command '{cmd.name}'; known: {', '.join(COMMAND_NAMES)}")
        return False
    if cmd.issued_at is not None:
        s.set(evidence=max(s.st.evidence, cmd.issued_at))
    return True


def facts(s: _Step, cmd: Command) -> None:
    """Run a command that changes the windows (before the step settles the lock)."""
    if cmd.name in FACTS:
        FACTS[cmd.name](s, cmd)


def request(s: _Step, cmd: Command) -> None:
    """Run any other command (after the lock is settled)."""
    if cmd.name in REQUESTS:
        REQUESTS[cmd.name](s, cmd)


def power(s: _Step, cmd: Command) -> None:
    """Switch the room (or one device) on or off; off during a lock only with ``override``."""
    on = cmd.args["on"]
    device = cmd.args.get("device")
    override = bool(cmd.args.get("override", False))
    if device is not None and device not in s.relays:
        s.reply(cmd, "invalid", f"args.device: unknown device '{device}'; this room has "
                                f"{', '.join(s.settings.names)}")
        return
    s.keep_on()  # the district switching the room after a window: it stays as it says
    w = s.locked
    if not on and w is not None:
        if not override:
            s.reply(cmd, "refused", f"locked by {w.kind} {w.id}; send override=true to switch "
                                    "off anyway", window_id=w.id)
            return
        s.emit(ev.LockOverridden(w.kind, cmd.id, cmd.sender, device))
    targets = (device,) if device else None
    s.reply(cmd, "accepted")
    s.power.start(on, f"{'override' if w is not None and not on else 'district'}:{cmd.id}",
                  targets)


def start_window(s: _Step, cmd: Command) -> None:
    """A window that starts now (ad hoc, not in the schedule)."""
    wid = cmd.args.get("window_id") or f"adhoc-{cmd.id}"
    if any(w.id == wid for w in s.st.windows):
        s.reply(cmd, "refused", f"window '{wid}' already exists")
        return
    w = Window(id=wid, kind=cmd.args.get("kind", "test"),
               start=s.now, end=s.now + float(cmd.args.get("duration_min", 60)) * 60.0,
               title=cmd.args.get("title", ""))
    s.set(adhoc=(*s.st.adhoc, w))
    s.emit(ev.WindowStarted(w.kind, w.title, iso(w.start) or "", iso(w.end) or "", cmd.sender,
                            cmd.id), w.id)
    s.reply(cmd, "accepted", window_id=w.id)


def complete_window(s: _Step, cmd: Command) -> None:
    """The district says a window is over: its lock ends."""
    wid = cmd.args["window_id"]
    if all(w.id != wid for w in s.st.windows):
        s.reply(cmd, "invalid", f"args.window_id: no window '{wid}' in this room's schedule")
        return
    if wid in s.st.completed:
        s.reply(cmd, "accepted", "already complete", window_id=wid)
        return
    s.set(completed=s.st.completed | {wid})
    s.emit(ev.WindowCompleted(cmd.sender, "command", cmd.id), wid)
    s.reply(cmd, "accepted", window_id=wid)


def operator_check(s: _Step, cmd: Command) -> None:
    """Ask whoever is in the room to press the button within a timeout."""
    timeout = float(cmd.args.get("timeout_s", s.settings.check_timeout_s))
    old = s.st.check
    if old is not None:
        s.emit(ev.OperatorCheckUnanswered(old.id, "superseded", round(s.waited(old), 3)))
    s.set(check=OperatorCheck(cmd.id, s.now, s.now + timeout, cmd.sender, s.mono))
    s.emit(ev.OperatorCheckRequested(cmd.id, timeout, cmd.sender))
    s.reply(cmd, "accepted", check_id=cmd.id)


def answer_help(s: _Step, cmd: Command) -> None:
    """The centre has seen the help request: it is no longer waiting."""
    if s.st.help_requested_at is None:
        s.reply(cmd, "accepted", "no help request is waiting")
        return
    s.set(help_requested_at=None)
    s.reply(cmd, "accepted")


def request_state(s: _Step, cmd: Command) -> None:
    """Publish the state message now."""
    s.reply(cmd, "accepted")
    s.actions.append(PublishState())


Handler = Callable[["_Step", Command], None]
FACTS: dict[str, Handler] = {"start_window": start_window, "complete_window": complete_window}
"""Commands that change the windows, and so the lock."""
REQUESTS: dict[str, Handler] = {"power": power, "operator_check": operator_check,
                                "request_state": request_state, "answer_help": answer_help}
"""Commands judged against the lock."""
COMMAND_NAMES: tuple[str, ...] = ("power", "start_window", "complete_window", "operator_check",
                                  "request_state", "answer_help")
