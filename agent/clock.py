"""What the room may believe about the wall clock (the rules are in ``docs/time.md``).

A Raspberry Pi has no battery-backed clock. Until NTP has synchronised it, the wall clock reads
whatever was restored at boot: the time ``fake-hwclock`` or ``systemd-timesyncd`` saved at the
last shutdown (possibly days behind), or 1970 if nothing was saved. A clock that is *behind*
would make a room believe a lock has not yet started (late power-up) and, worse, a clock that
jumps *ahead* or a wrong time would make it believe a window is long over (lock ended early:
problem 3 of the district's letter). This module holds the knowledge and the policy, kept pure:

* :func:`clock_synchronized` asks the system, through injectable probes;
* :func:`trust_wall_clock` decides whether a reading may be used to *relax* protection
  (end a lock by time, consider a window over);
* :func:`earliest_possible_now` gives a time the true time is certainly not before, which is
  enough to *start* protection (power up, lock) for a window that has provably begun.

Sync detection, first answer wins:

1. ``/run/systemd/timesync/synchronized`` exists: ``systemd-timesyncd`` (Raspberry Pi OS and
   Debian default) creates it at its first successful synchronisation after boot; ``/run`` is
   a tmpfs, so it cannot be stale from a previous boot.
2. The kernel's NTP state via ``adjtimex(2)`` (``ctypes``, read-only, ``modes = 0``): the
   clock counts as synchronised when ``STA_UNSYNC`` is clear and the maximum error is under
   16 s. Any NTP daemon that disciplines the kernel (timesyncd, chrony, ntpd) clears the flag;
   this covers rooms where chrony replaced timesyncd.
3. Anything else (not Linux, no libc, a seccomp filter refusing the call): **not synchronised**,
   the conservative answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SYNC_FLAG = Path("/run/systemd/timesync/synchronized")
MIN_PLAUSIBLE_TIME = 1_735_689_600.0
"""2025-01-01T00:00:00Z. No clock reading before this is a real time for this software."""

STA_UNSYNC = 0x0040
TIME_ERROR = 5
MAX_SYNCED_ERROR_US = 16_000_000  # the kernel's NTP_PHASE_LIMIT: "unsynchronised"

Probe = Callable[[], bool | None]
"""A sync probe: True (synchronised), False (known not), None (cannot tell)."""


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class Timex(ctypes.Structure):
    """``struct timex`` as the classic (non-time64) ``adjtimex`` symbol expects it."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
        ("_slack", ctypes.c_char * 64),  # margin in case a libc's struct is larger
    )


def flag_file_probe(path: Path = SYNC_FLAG) -> Probe:
    """A probe that says True when timesyncd's flag file exists, None otherwise."""

    def probe() -> bool | None:
        try:
            return True if path.exists() else None
        except OSError:
            return None

    return probe


def adjtimex_probe(libc_name: str | None = None) -> Probe:
    """A probe reading the kernel NTP state with ``adjtimex`` (no privileges needed).

    libc is looked up once, on the first call: ``ctypes.util.find_library`` runs
    ``ldconfig``/``gcc`` as child processes, far too costly for every heartbeat."""
    found: list[Callable[..., int] | None] = []

    def adjtimex() -> Callable[..., int] | None:
        if not found:
            try:
                libc = ctypes.CDLL(libc_name or ctypes.util.find_library("c") or "libc.so.6",
                                   use_errno=True)
                fn = libc.adjtimex
                fn.argtypes = (ctypes.POINTER(Timex),)
                fn.restype = ctypes.c_int
                found.append(fn)
            except (OSError, AttributeError):
                found.append(None)
        return found[0]

    def probe() -> bool | None:
        fn = adjtimex()
        if fn is None:
            return None
        tx = Timex()  # modes = 0: read only
        state = fn(ctypes.byref(tx))
        if state < 0:
            log.debug("adjtimex failed: %s", os.strerror(ctypes.get_errno()))
            return None
        return timex_synchronized(state, tx.status, tx.maxerror)

    return probe


def timex_synchronized(state: int, status: int, maxerror_us: int) -> bool:
    """The kernel's view from ``adjtimex`` results (pure, for tests)."""
    return state != TIME_ERROR and not status & STA_UNSYNC and maxerror_us < MAX_SYNCED_ERROR_US


DEFAULT_PROBES: tuple[Probe, ...] = (flag_file_probe(), adjtimex_probe())


def clock_synchronized(probes: Sequence[Probe] | None = None) -> bool:
    """True only if a probe positively says the clock is synchronised.

    Probes are asked in order; the first definite answer (True or False) wins, ``None`` passes
    to the next, and a probe that raises counts as ``None``. No answer at all means False.
    """
    for probe in DEFAULT_PROBES if probes is None else probes:
        answer: bool | None = None
        with contextlib.suppress(Exception):
            answer = probe()
        if answer is not None:
            return bool(answer)
    return False


def trust_wall_clock(now: float, synced: bool, last_known_good: float,
                     min_plausible: float = MIN_PLAUSIBLE_TIME) -> bool:
    """May ``now`` be used to end or relax protection (a lock's end, a window being over)?

    Only when all hold:

    * the clock is synchronised (an unsynchronised Pi clock is at best a lower bound);
    * ``now`` is not earlier than ``last_known_good``, the latest trusted time persisted to
      disk (time seen to run backwards means something is wrong, whatever NTP says);
    * ``now`` is plausible (not before :data:`MIN_PLAUSIBLE_TIME`).
    """
    return bool(synced) and now >= last_known_good and now >= min_plausible


def earliest_possible_now(now: float, last_known_good: float,
                          evidence: Iterable[float] = (),
                          min_plausible: float = MIN_PLAUSIBLE_TIME) -> float | None:
    """A time the true time is certainly not before, or None if nothing is known.

    Good for *starting* protection only (power up for a window that has begun), never for
    ending it. Sources: ``last_known_good``; ``evidence`` (timestamps the district stamped on
    messages already received, such as a schedule's or command's own time: they were written
    in the past); and the local clock when it reads at least ``last_known_good`` — without
    sync a Pi's clock restarts from a saved past time and runs forward, so it is a lower
    bound, possibly hours behind. Implausible values (1970) are ignored.
    """
    candidates = [t for t in (last_known_good, *evidence) if t >= min_plausible]
    if now >= min_plausible and now >= last_known_good:
        candidates.append(now)
    return max(candidates) if candidates else None


def iso_ms(ts: float) -> str:
    """``ts`` (epoch seconds) as ISO-8601 UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def read_last_known_good(path: Path) -> float:
    """The persisted last trusted time, or 0.0 if the file is missing or unreadable."""
    try:
        value = float(path.read_text().strip())
    except (OSError, ValueError):
        return 0.0
    return value if value == value and value >= 0 else 0.0  # NaN check


def write_last_known_good(path: Path, t: float) -> None:
    """Persist a *trusted* time atomically (temp file, fsync, rename). Never store a time that
    :func:`trust_wall_clock` rejected: a wrong time saved here would be believed later."""
    from agent.store import write_atomic

    write_atomic(path, f"{t:.3f}\n".encode())
