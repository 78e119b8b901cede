"""The agent's journal: every decision and fault that matters, one line each, at the level an
operator filters on (``journalctl -u diemcau-agent -p warning``).

:data:`EVENTS` is the one table: event kind → level and a one-line English message naming the
window, the devices and the ids involved. :func:`log_event` writes one line for one recorded
event; the shell calls it for every event it records (``Agent.feed`` for the core's, and each
place that calls ``outbox.append`` itself). A few kinds are log lines only, never events:
``broker_connected``, ``broker_lost``, ``outbox_backlog``, ``outbox_backlog_cleared`` and
``loop_failing``.

Under journald (``$JOURNAL_STREAM`` names our stderr, as systemd sets it) every line starts with
its syslog priority, ``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug (sd-daemon(3)),
and carries no time stamp: the journal has its own. Elsewhere lines are time-stamped. A line
never holds a secret: a field whose name looks like one (``password``, ``token``, ``…key``) is
shown as ``***`` and values are cut to one short line.

Example::

    setup_logging("INFO")
    log_event("shutdown_refused", {"source": "button", "kind": "test", "title": "Kiểm tra"},
              window_id="t-1")
    # <4>diemcau.journal: shutdown_refused: switch-off by button refused: the room is locked
    #   by test «Kiểm tra» [window t-1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from agent.config import SECRET_KEYS

log = logging.getLogger("diemcau.journal")

LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
            logging.DEBUG: 7}
"""Python level → syslog priority (``<N>`` prefix understood by journald)."""

MAX_VALUE = 200
"""Longest single value shown in a line (the rest is ``…``)."""

INFO, WARN, ERR = logging.INFO, logging.WARNING, logging.ERROR


# ---------------------------------------------------------------------------------- levels
def parse_level(text: str) -> str:
    """The canonical level name for ``text`` (any case, ``WARN`` too); ``ValueError`` naming
    the valid choices otherwise."""
    name = str(text).strip().upper()
    name = "WARNING" if name == "WARN" else name
    if name not in LEVEL_NAMES:
        raise ValueError(f"{text!r} is not a log level; choose from {', '.join(LEVEL_NAMES)}")
    return name


def level_arg(text: str) -> str:
    """``argparse`` type for ``--log-level``: a bad value is a usage error (exit 2)."""
    try:
        return parse_level(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} (from --log-level or $DIEMCAU_LOG)") from None


# ---------------------------------------------------------------------------------- output
def under_journald(stream: TextIO | None = None,
                   environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` (default stderr) is the journal stream systemd connected us to.

    systemd sets ``JOURNAL_STREAM=<device>:<inode>`` of that stream; as sd-daemon(3) advises,
    it must match the stream itself (a redirected stderr is not the journal any more).
    """
    env = os.environ if environ is None else environ
    dev, _, ino = env.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def priority(levelno: int) -> int:
    """The syslog priority of a Python level (a custom level counts as the one below it)."""
    for level, prio in sorted(PRIORITY.items(), reverse=True):
        if levelno >= level:
            return prio
    return 7


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, the priority on every line (a traceback's too), no time."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prio = priority(record.levelno)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`setup_logging` installs (so a second call replaces it)."""


def setup_logging(level: str, stream: TextIO | None = None,
                  environ: Mapping[str, str] | None = None) -> logging.Handler:
    """Send every log line to ``stream`` (default stderr) at ``level`` and above, in the
    journal's format under journald and time-stamped otherwise. Calling it again replaces
    the handler it installed. Where someone else already handles the root logger (a test
    runner capturing logs) only the level is set, as ``logging.basicConfig`` would."""
    out = stream or sys.stderr
    handler = _OurHandler(out)
    handler.setFormatter(JournalFormatter() if under_journald(out, environ)
                         else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _OurHandler)]
    for h in ours:
        root.removeHandler(h)
    if stream is not None or not root.handlers:
        root.addHandler(handler)
    global _start_level
    _start_level = parse_level(level)
    set_level(level)
    return handler


_start_level = "INFO"


def set_level(level: str) -> None:
    """Change the level of every log line."""
    logging.getLogger().setLevel(parse_level(level))


def use_config_level(level: str | None) -> None:
    """The site file's ``log_level`` if it has one, else the level logging was set up with
    (``--log-level``): at start and after every reload."""
    set_level(level or _start_level)


# ---------------------------------------------------------------------------------- events
class _Fields(dict):  # type: ignore[type-arg]
    """Event data as ``str.format_map`` sees it: one short line per value, secrets masked,
    a missing field shown as ``-``."""

    def __missing__(self, key: str) -> str:
        return "-"


def _show(key: str, value: Any) -> str:
    if SECRET_KEYS.search(key) and not isinstance(value, dict | list):
        return "***"
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(_show(key, v) for v in value) or "none"
    elif isinstance(value, dict):
        text = json.dumps(_masked(value), ensure_ascii=False, separators=(",", ":"))
    elif value is None:
        text = "-"
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 1] + "…"


def _masked(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: "***" if SECRET_KEYS.search(str(k)) and not isinstance(v, dict | list)
                else _masked(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_masked(v) for v in data]
    return data


def _fields(data: Mapping[str, Any]) -> _Fields:
    f = _Fields({k: _show(k, v) for k, v in data.items()})
    if isinstance(data.get("on"), bool):
        f["on"] = "on" if data["on"] else "off"
    return f


Level = int | Callable[[Mapping[str, Any]], int]
Text = str | Callable[[Mapping[str, Any], _Fields], str]


@dataclass(frozen=True)
class Entry:
    """How one event kind is logged: its level (or a function of its data) and message."""

    level: Level
    text: Text


def _ready(data: Mapping[str, Any], f: _Fields) -> str:
    devices = data.get("devices") if isinstance(data.get("devices"), dict) else {}
    states = ", ".join(f"{n} {_show('state', d.get('state') if isinstance(d, dict) else d)}"
                       for n, d in devices.items())
    head = "every device ready" if data.get("on_by_start") else "NOT every device ready"
    return f"window starts at {f['start']}: {head} ({states or 'no devices'})"


def _generic(data: Mapping[str, Any], f: _Fields) -> str:
    return ", ".join(f"{k}={v}" for k, v in f.items()) or "(no data)"


def _problems(data: Mapping[str, Any], f: _Fields) -> str:
    problems = data.get("problems")
    items = problems if isinstance(problems, list) else [problems]
    return f"{len(items)} problem(s): " + "; ".join(_show("problem", p) for p in items)


EVENTS: dict[str, Entry] = {
    # -- the core's decisions --------------------------------------------------------------
    "power_requested": Entry(INFO, "power {on} requested by {source}"),
    "shutdown_refused": Entry(WARN, "switch-off by {source} refused: the room is locked by "
                                 "{kind} «{title}»"),
    "help_requested": Entry(WARN, "the operator asked for help ({source})"),
    "power_sequence_started": Entry(INFO, "power {on} sequence started ({reason}): {devices}"),
    "power_step": Entry(lambda d: WARN if d.get("outcome") == "timeout" else INFO,
                        "power {on} step {device}: {outcome} after {elapsed_s} s ({reason})"),
    "power_sequence_finished": Entry(INFO, "power {on} sequence finished ({reason}) in "
                                        "{elapsed_s} s"),
    "power_sequence_cancelled": Entry(INFO, "power {on} sequence ({reason}) cancelled at "
                                         "{device}, replaced by {replaced_by}"),
    "window_power_up": Entry(INFO, "powering up for {kind} «{title}» starting {start}"),
    "window_ready": Entry(lambda d: INFO if d.get("on_by_start") else WARN, _ready),
    "lock_engaged": Entry(INFO, "lock engaged for {kind} «{title}»: {start} to {end}, "
                             "released by {cap} at the latest"),
    "lock_moved": Entry(INFO, "lock moved: {start} to {end}, cap {cap}"),
    "lock_released": Entry(lambda d: INFO if d.get("reason") in ("completed", "window_removed")
                           else WARN, "lock released ({reason})"),
    "lock_overridden": Entry(WARN, "lock of {kind} overridden by {by} (command {command_id}, "
                                "device {device})"),
    "window_started": Entry(INFO, "{kind} «{title}» started by {by} (command {command_id}): "
                               "{start} to {end}"),
    "window_completed": Entry(INFO, "window completed by {by} via {via} (command {command_id})"),
    "after_window_power_off": Entry(INFO, "window over: powering off after {after_s} s"),
    "check_in": Entry(INFO, "operator checked in ({kind})"),
    "operator_check_requested": Entry(INFO, "operator check {check_id} requested by {by}, "
                                         "{timeout_s} s to answer"),
    "operator_check_acknowledged": Entry(INFO, "operator check {check_id} answered in "
                                            "{latency_s} s"),
    "operator_check_unanswered": Entry(WARN, "operator check {check_id} unanswered ({reason}) "
                                          "after {waited_s} s"),
    "schedule_applied": Entry(INFO, "schedule {version} applied ({windows} window(s), digest "
                                 "{digest})"),
    "device_health": Entry(lambda d: {"ok": INFO, "degraded": WARN, "fault": ERR}.get(
        str(d.get("status")), INFO), "device {device} is {status}: {reason}"),
    "device_identity_changed": Entry(WARN, "device {device} is now {model} {serial} (was "
                                        "{was_model} {was_serial})"),
    "self_help_power_cycle": Entry(WARN, "power-cycling {device} to bring it back ({reason})"),
    "self_help_withheld": Entry(WARN, "not power-cycling {device}: {reason}"),
    "unscheduled_use": Entry(INFO, "{device} used outside any window ({what})"),
    "unscheduled_use_ended": Entry(INFO, "{device} no longer used outside a window ({what}, "
                                      "{duration_s} s)"),
    "selftest_started": Entry(INFO, "self-test started by {source}: {devices}"),
    "selftest_refused": Entry(WARN, "self-test by {source} refused ({reason}) {kind} «{title}»"),
    "selftest_device": Entry(lambda d: INFO if d.get("ok") else WARN,
                             "self-test {device}: off {off}, on {on}, relay closed {relay}"),
    "selftest_finished": Entry(lambda d: INFO if d.get("ok") else WARN,
                               "self-test finished in {elapsed_s} s: ok {ok}, failed {failed}, "
                               "interrupted by {interrupted_by}"),
    # -- the shell's own events ------------------------------------------------------------
    "agent_started": Entry(lambda d: WARN if d.get("previous_stop") in ("crash",
                                                                     "power_loss_or_reboot")
                           else INFO, "agent {agent_version} started (after reboot: "
                                   "{after_reboot}, previous stop: {previous_stop}); relays "
                                   "{relays}; locked by {locked_by}"),
    "agent_stopping": Entry(lambda d: ERR if d.get("reason") == "error" else INFO,
                            "agent stopping ({reason}, system shutdown: {system_shutdown})"),
    "link_restored": Entry(INFO, "link to the broker restored after {down_s} s (down since "
                              "{down_since}, {reconnects} reconnect(s))"),
    "schedule_rejected": Entry(ERR, lambda d, f: f"schedule {f['version']} (digest "
                                               f"{f['digest']}) rejected: "
                                               + _problems(d, f)),
    "schedule_cache_failed": Entry(ERR, "cannot keep the schedule on disk: {error}"),
    "relay_failed": Entry(ERR, "relay of {device} failed to switch {wanted_text}: pin reads "
                             "{actual_text} ({error})"),
    "config_reloaded": Entry(INFO, "site config reloaded (hash {config_hash}); applied: "
                                "{applied}"),
    "config_reload_refused": Entry(WARN, lambda d, f: "site config NOT reloaded, the agent runs "
                                                   "on with the old one: " + _problems(d, f)),
    "events_dropped": Entry(ERR, "{count} event(s) dropped ({reason}): seq {first_seq} to "
                               "{last_seq}"),
    "outbox_reset": Entry(ERR, "event store reset ({reason}: {error}); old file moved to "
                             "{moved_to}; on disk: {durable}"),
    "ha_command_refused": Entry(WARN, "Home Assistant command on {topic} refused ({reason}); "
                                   "nothing changed"),
    # -- log lines only, never events ------------------------------------------------------
    "broker_connected": Entry(INFO, "connected to the broker {broker}"),
    "broker_lost": Entry(WARN, "lost the broker {broker}; events wait in the outbox"),
    "outbox_backlog": Entry(WARN, "{pending} event(s) waiting for the broker, oldest "
                               "{oldest_age_s} s old"),
    "outbox_backlog_cleared": Entry(INFO, "event backlog delivered ({pending} waiting)"),
    "loop_failing": Entry(ERR, "the main loop failed {failures} time(s) in a row over {seconds} "
                             "s (last: {error}): no more watchdog pings, systemd will restart "
                             "the agent"),
}


class BacklogWatch:
    """Says when events pile up for the broker: ``outbox_backlog`` (WARNING) when the
    backlog reaches ``warn_at`` and each time it doubles, ``outbox_backlog_cleared`` (INFO)
    once it is below half of ``warn_at`` again. Reads the outbox every ``every_s`` at most."""

    def __init__(self, warn_at: int = 100, every_s: float = 10.0) -> None:
        self.warn_at = warn_at
        self.every_s = every_s
        self._next_check: float | None = None
        self._warned: int | None = None

    def observe(self, stats: Callable[[], Any], now: float) -> None:
        """Call every loop turn; ``stats()`` (``Outbox.stats``) only when a check is due."""
        if self._next_check is not None and now < self._next_check:
            return
        self._next_check = now + self.every_s
        try:
            st = stats()
        except Exception as e:  # the outbox logs its own faults; a check can wait
            log.debug("cannot read the outbox backlog: %s", e)
            return
        self.update(int(st.pending), st.oldest_age_s)

    def update(self, pending: int, oldest_age_s: float | None) -> None:
        """Log the backlog if it crossed a threshold since the last call."""
        if pending >= self.warn_at and (self._warned is None or pending >= 2 * self._warned):
            self._warned = pending
            age = None if oldest_age_s is None else round(oldest_age_s)
            log_event("outbox_backlog", {"pending": pending, "oldest_age_s": age})
        elif self._warned is not None and pending < self.warn_at / 2:
            self._warned = None
            log_event("outbox_backlog_cleared", {"pending": pending})


def describe(kind: str, data: Mapping[str, Any],
             window_id: str | None = None) -> tuple[int, str]:
    """The level and the line :func:`log_event` writes for one event."""
    data = data if isinstance(data, Mapping) else {"data": data}
    entry = EVENTS.get(kind, Entry(INFO, _generic))
    level = entry.level(data) if callable(entry.level) else entry.level
    f = _fields(data)
    if kind == "relay_failed":
        f["wanted_text"] = "on" if data.get("wanted") else "off"
        actual = data.get("actual")
        f["actual_text"] = "unreadable" if actual is None else "on" if actual else "off"
    try:
        text = entry.text(data, f) if callable(entry.text) else entry.text.format_map(f)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError):
        text = _generic(data, f)
    wid = window_id if window_id is not None else data.get("window_id")
    where = f" [window {_show('window_id', wid)}]" if wid else ""
    return level, f"{kind}: {text}{where}"


def log_event(kind: str, data: Mapping[str, Any], window_id: str | None = None) -> None:
    """Write the journal line for one recorded event (never raises: logging must not stop
    the room)."""
    try:
        level, line = describe(kind, data, window_id)
    except Exception:  # pragma: no cover - a bug here must not lose the event itself
        log.exception("cannot describe event %s", kind)
        return
    log.log(level, "%s", line)
