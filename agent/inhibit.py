"""Hold a logind shutdown inhibitor while the room is locked.

While a window locks the room, the Pi's own shutdown, reboot and power key must not switch it
off either. logind's *block* inhibitor refuses them (for anyone but root, who is warned) until
it is released. The agent holds one through ``systemd-inhibit`` for exactly as long as the
lock lasts; the polkit rule in ``deploy/polkit/`` lets the agent's user take it.
On a machine without systemd (a developer's container) there is nothing to hold: a no-op.

The child is started without ``preexec_fn`` (unsafe in a threaded process): it gets its own
process group (``process_group=0``) and holds the inhibitor with ``cat`` reading a pipe from
the agent, so the lock ends when the agent does, even after ``kill -9`` (the pipe's end is
end-of-file for ``cat``; ``systemd-inhibit`` then exits and logind lets go). :meth:`release`
never waits on the loop's thread: it closes the pipe, signals the group and leaves the reaping
(SIGKILL after :attr:`ShutdownInhibitor.KILL_AFTER_S` if the child ignores SIGTERM) to a
background thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

WHAT = "shutdown:sleep:handle-power-key:handle-reboot-key"


def systemd_running() -> bool:
    """True when systemd is PID 1 (the test ``sd_booted()`` uses)."""
    return Path("/run/systemd/system").is_dir()


class ShutdownInhibitor:
    """``hold(why)`` takes the inhibitor (or changes nothing if it is held), ``release()``
    lets it go. The inhibitor lives as long as a child ``systemd-inhibit ... cat`` process."""

    RETRY_S = 60.0
    KILL_AFTER_S = 5.0
    """How long a released child gets to exit after SIGTERM before its group is killed."""

    def __init__(self, binary: str | None = None, enabled: bool | None = None) -> None:
        self.binary = binary or shutil.which("systemd-inhibit")
        self.enabled = (systemd_running() if enabled is None else enabled) and bool(self.binary)
        self._proc: subprocess.Popen[bytes] | None = None
        self.why: str | None = None
        self._failed_at: float | None = None
        self.failure: str | None = None

    @property
    def held(self) -> bool:
        """True while the child holding the inhibitor runs."""
        return self._proc is not None and self._proc.poll() is None

    def hold(self, why: str) -> bool:
        """Hold the inhibitor; returns True if it is held now."""
        if not self.enabled:
            return False
        if self._proc is not None and self._proc.poll() is not None:
            # systemd-inhibit exits at once when logind refuses (polkit): say so, once.
            proc, self._proc = self._proc, None
            self.failure = _stderr_of(proc) or f"systemd-inhibit exited {proc.returncode}"
            log.error("shutdown inhibitor refused: %s (deploy/polkit/ rule installed?)",
                      self.failure)
            _close_pipes(proc)
            self._failed_at = time.monotonic()
        if self.held and why == self.why:
            return True
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.RETRY_S:
            return False
        self.release()
        assert self.binary is not None
        try:
            self._proc = subprocess.Popen(
                [self.binary, f"--what={WHAT}", "--who=diemcau", f"--why={why}", "--mode=block",
                 "cat"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                process_group=0)
        except OSError as e:
            log.error("cannot hold the shutdown inhibitor: %s", e)
            self._proc = None
            return False
        self.why = why
        return True

    def release(self) -> None:
        """Let the inhibitor go; returns at once (the child is reaped in the background)."""
        proc, self._proc, self.why = self._proc, None, None
        self._failed_at = None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()  # end of input: the inhibited `cat` exits by itself
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
        threading.Thread(target=_reap, args=(proc, self.KILL_AFTER_S), name="inhibit-reap",
                         daemon=True).start()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    # Only while the child is not reaped: its pid (= its group's id) is still ours.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _reap(proc: subprocess.Popen[bytes], kill_after: float) -> None:
    try:
        proc.wait(kill_after)
    except subprocess.TimeoutExpired:
        log.warning("shutdown inhibitor (pid %d) ignored SIGTERM; killing it", proc.pid)
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    _close_pipes(proc)


def _stderr_of(proc: subprocess.Popen[bytes]) -> str:
    """What an exited child wrote to stderr, without blocking on a pipe someone still holds."""
    if proc.stderr is None:
        return ""
    with contextlib.suppress(OSError, ValueError):
        os.set_blocking(proc.stderr.fileno(), False)
        return (proc.stderr.read() or b"").decode(errors="replace").strip()
    return ""


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for f in (proc.stdin, proc.stderr):
        with contextlib.suppress(OSError):
            if f is not None:
                f.close()
