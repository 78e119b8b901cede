"""Hold a logind shutdown inhibitor while the room is locked.

While a window locks the room, the Pi's own shutdown, reboot and power key must not switch it
off either. logind's *block* inhibitor refuses them (for anyone but root, who is warned) until
it is released. The agent holds one through ``systemd-inhibit`` for exactly as long as the
lock lasts; the polkit rule in ``deploy/polkit/`` lets the agent's user take it.
On a machine without systemd (a developer's container) there is nothing to hold: a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

WHAT = "shutdown:sleep:handle-power-key:handle-reboot-key"


def systemd_running() -> bool:
    """True when systemd is PID 1 (the test ``sd_booted()`` uses)."""
    return Path("/run/systemd/system").is_dir()


class ShutdownInhibitor:
    """``hold(why)`` takes the inhibitor (or changes nothing if it is held), ``release()``
    lets it go. The inhibitor lives as long as a child ``systemd-inhibit ... sleep`` process."""

    RETRY_S = 60.0

    def __init__(self, binary: str | None = None, enabled: bool | None = None) -> None:
        self.binary = binary or shutil.which("systemd-inhibit")
        self.enabled = (systemd_running() if enabled is None else enabled) and bool(self.binary)
        self._proc: subprocess.Popen[bytes] | None = None
        self.why: str | None = None
        self._failed_at: float | None = None
        self.failure: str | None = None

    @property
    def held(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def hold(self, why: str) -> bool:
        """Hold the inhibitor; returns True if it is held now."""
        if not self.enabled:
            return False
        if self._proc is not None and self._proc.poll() is not None:
            # systemd-inhibit exits at once when logind refuses (polkit): say so, once.
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
            self.failure = err.strip() or f"systemd-inhibit exited {self._proc.returncode}"
            log.error("shutdown inhibitor refused: %s (deploy/polkit/ rule installed?)",
                      self.failure)
            self._proc = None
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
                 "sleep", "infinity"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent)
        except OSError as e:
            log.error("cannot hold the shutdown inhibitor: %s", e)
            self._proc = None
            return False
        self.why = why
        return True

    def release(self) -> None:
        proc, self._proc, self.why = self._proc, None, None
        self._failed_at = None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _die_with_parent() -> None:
    # If the agent is killed, the inhibitor must not outlive it (PR_SET_PDEATHSIG = 1).
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    os.setpgrp()
