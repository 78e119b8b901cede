"""Talking to systemd without a library: readiness, status and the watchdog (``sd_notify``).

The protocol (``man sd_notify``): newline-separated ``KEY=VALUE`` assignments sent as one
datagram to the ``AF_UNIX`` socket named in ``$NOTIFY_SOCKET``; a name starting with ``@``
is in the abstract namespace (the ``@`` becomes a NUL byte). Outside systemd the variable is
unset and every call here is a harmless no-op returning False.

The unit (``deploy/systemd/diemcau-agent.service``) is ``Type=notify`` with ``WatchdogSec=30``:
systemd restarts the agent if no ``WATCHDOG=1`` arrives for 30 s. A watchdog thread that pinged
unconditionally would keep a wedged main loop alive forever, so :class:`Watchdog` pings only
if the main loop said :meth:`Watchdog.loop_alive` since the previous ping. A loop that comes
round but fails every time is as stuck as a wedged one: :class:`FailureRun` counts its failures
in a row, and the loop stops saying it is alive once they are too many or last too long.

Example::

    wd = Watchdog.from_env()
    ready(status="room idle")
    while running:
        step()
        wd.loop_alive()
        wd.maybe_ping()      # or: wd.start_thread(stop_event) once, before the loop
    stopping()
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _address(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    addr = env.get("NOTIFY_SOCKET", "")
    if addr.startswith("@"):
        return "\0" + addr[1:]
    if addr.startswith("/"):
        return addr
    return None  # unset, or a kind we do not speak (vsock:...)


def notify(msg: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``msg`` (e.g. ``"READY=1"``) to systemd; False if not under systemd or on error."""
    addr = _address(environ)
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(msg.encode("utf-8"), addr)
        return True
    except OSError as e:
        log.warning("sd_notify %r failed: %s", msg.split("\n", 1)[0], e)
        return False


def _clean(text: str) -> str:
    return " ".join(text.split())  # one line: a newline would start a new assignment


def ready(status: str | None = None) -> bool:
    """Tell systemd start-up is finished (``READY=1``), optionally with a status line."""
    return notify("READY=1" + (f"\nSTATUS={_clean(status)}" if status else ""))


def stopping(status: str | None = None) -> bool:
    """Tell systemd the agent is shutting down (``STOPPING=1``)."""
    return notify("STOPPING=1" + (f"\nSTATUS={_clean(status)}" if status else ""))


def reloading(status: str | None = None) -> bool:
    """Tell systemd the agent is re-reading its config (``RELOADING=1``); :func:`ready` ends it."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}"
                  + (f"\nSTATUS={_clean(status)}" if status else ""))


def status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status diemcau-agent``."""
    return notify(f"STATUS={_clean(text)}")


def extend_timeout(seconds: float) -> bool:
    """Ask for more time to start or stop (``EXTEND_TIMEOUT_USEC``), e.g. a slow codec."""
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


class Watchdog:
    """``WATCHDOG=1`` pings that stop when the main loop stops.

    ``interval`` is half of systemd's ``WATCHDOG_USEC`` (as ``man sd_watchdog_enabled``
    advises); :meth:`maybe_ping` sends at most one ping per ``interval / 2`` and only if
    :meth:`loop_alive` was called since the last ping. Call :meth:`maybe_ping` at least every
    ``interval / 2`` (the period :meth:`start_thread` uses) so a healthy loop is never late.
    Thread-safe: the loop calls :meth:`loop_alive`, any thread may call :meth:`maybe_ping`.
    """

    def __init__(self, interval: float | None, clock: Callable[[], float] = time.monotonic,
                 send: Callable[[str], bool] = notify) -> None:
        self.interval = interval if interval and interval > 0 else None
        self._clock = clock
        self._send = send
        self._lock = threading.Lock()
        self._alive = False
        self._last_ping: float | None = None
        self.pings = 0

    @classmethod
    def from_env(cls, clock: Callable[[], float] = time.monotonic,
                 environ: Mapping[str, str] | None = None, pid: int | None = None,
                 send: Callable[[str], bool] | None = None) -> Watchdog:
        """A watchdog configured from ``$WATCHDOG_USEC`` / ``$WATCHDOG_PID``.

        Disabled (every call a no-op) when ``WATCHDOG_USEC`` is missing or invalid, or when
        ``WATCHDOG_PID`` is set to another process's id (the variables were inherited by a
        child); an unset ``WATCHDOG_PID`` means this process, as in libsystemd.
        """
        env = os.environ if environ is None else environ
        me = os.getpid() if pid is None else pid
        interval: float | None = None
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
            wpid = env.get("WATCHDOG_PID")
            if usec > 0 and (wpid is None or int(wpid) == me):
                interval = usec / 2 / 1_000_000
        except ValueError:
            interval = None
        if send is None:
            def send(msg: str) -> bool:
                return notify(msg, env)
        return cls(interval, clock=clock, send=send)

    @property
    def enabled(self) -> bool:
        """True if systemd expects pings from this process."""
        return self.interval is not None

    def loop_alive(self) -> None:
        """Called by the main loop every iteration: "I am still making progress"."""
        with self._lock:
            self._alive = True

    def maybe_ping(self) -> bool:
        """Send ``WATCHDOG=1`` if due and the loop reported alive; True if a ping was sent."""
        if self.interval is None:
            return False
        with self._lock:
            now = self._clock()
            if not self._alive:
                return False
            if self._last_ping is not None and now - self._last_ping < self.interval / 2:
                return False
            self._alive = False
            self._last_ping = now
            self.pings += 1
        return self._send("WATCHDOG=1")

    def start_thread(self, stop: threading.Event) -> threading.Thread | None:
        """Run :meth:`maybe_ping` every ``interval / 2`` in a daemon thread until ``stop``."""
        if self.interval is None:
            return None
        period = self.interval / 2

        def run() -> None:
            while not stop.wait(period):
                self.maybe_ping()

        t = threading.Thread(target=run, name="systemd-watchdog", daemon=True)
        t.start()
        return t


class FailureRun:
    """Consecutive failures of the main loop, so that a failure repeating every turn ends in a
    restart instead of a room frozen behind log lines.

    :meth:`failed` after a turn that raised, :meth:`succeeded` after one that did not (which
    ends the run). :attr:`exhausted` once ``max_failures`` turns in a row failed or the run
    has lasted ``max_s`` seconds; the loop then stops calling :meth:`Watchdog.loop_alive`.
    """

    def __init__(self, max_failures: int = 20, max_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.max_s = max_s
        self._clock = clock
        self.count = 0
        self.since: float | None = None
        self._said = False

    @property
    def seconds(self) -> float:
        """How long the current run of failures has lasted (0 without one)."""
        return 0.0 if self.since is None else self._clock() - self.since

    @property
    def exhausted(self) -> bool:
        """True once the run is too long: the loop should stop feeding the watchdog."""
        return self.count > 0 and (self.count >= self.max_failures
                                   or self.seconds >= self.max_s)

    def failed(self) -> bool:
        """Count one failed turn; True the first time the run is found exhausted (say why)."""
        if self.since is None:
            self.since = self._clock()
        self.count += 1
        if self.exhausted and not self._said:
            self._said = True
            return True
        return False

    def succeeded(self) -> bool:
        """A turn went well: the run is over. True if it had been exhausted (recovered)."""
        was = self._said
        self.count = 0
        self.since = None
        self._said = False
        return was


def _hhmm(stamp: str | None, tz: str | None) -> str:
    """``2026-11-29T02:00:00.000Z`` as ``09:00`` in zone ``tz`` (UTC without one)."""
    import datetime as dt
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not stamp:
        return "?"
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if tz:
            when = when.astimezone(ZoneInfo(tz))
    except (ValueError, ZoneInfoNotFoundError):
        return stamp
    return when.strftime("%H:%M") if tz else when.strftime("%H:%MZ")


def status_line(state: Mapping[str, object], tz: str | None = None) -> str:
    """The one line ``systemctl status diemcau-agent`` shows: the lock and the window, then
    power and link, from the agent's state message (``Agent.state_message()``); times in the
    room's zone ``tz``. Pass it to :func:`status` whenever the state changes, e.g.::

        LOCKED by session s1 «Họp tháng» since 13:30 (cap 18:00) | power on | link up
        idle, next test t2 «Kiểm tra» at 14:00 | power off | link down
    """

    def get(obj: object, key: str) -> object:
        return obj.get(key) if isinstance(obj, Mapping) else None

    lock, window, nxt = get(state, "lock"), get(state, "window"), get(state, "next_window")
    if get(lock, "locked"):
        title = get(window, "title") or ""
        head = (f"LOCKED by {get(lock, 'kind') or 'window'} {get(lock, 'window_id')}"
                + (f" «{title}»" if title else "")
                + f" since {_hhmm(get(lock, 'since'), tz)}"  # type: ignore[arg-type]
                + f" (cap {_hhmm(get(lock, 'released_by_cap_at'), tz)})")  # type: ignore[arg-type]
    elif isinstance(nxt, Mapping):
        title = nxt.get("title") or ""
        head = (f"idle, next {nxt.get('kind')} {nxt.get('id')}" + (f" «{title}»" if title else "")
                + f" at {_hhmm(nxt.get('start'), tz)}")  # type: ignore[arg-type]
    else:
        head = "idle, no window scheduled"
    link = "link up" if get(state, "broker_connected") else "link down"
    return _clean(f"{head} | power {get(state, 'power') or '?'} | {link}")
