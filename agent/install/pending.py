"""Restart the agent after an install or upgrade — now, or once the room's lock has ended.

A restart never glitches a relay, but it does end the agent's process in the middle of a
window: the district sees ``agent_stopped_during_lock`` and the room is briefly without its
lock. So the installer (and the fleet playbook) ask the running agent first, over its control
socket (``status``): while a window locks the room the restart is **deferred**: a marker
``restart-pending`` is written in the state directory, and ``diemcau-agent-restart.timer``
(every minute) runs :func:`run_pending`, which restarts the agent once no lock holds.

Example::

    action, message = restart_or_defer(Path("/var/lib/diemcau"), "installed 0.2.0")
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from agent.control import request
from agent.store import write_atomic

MARKER = "restart-pending"
UNIT = "diemcau-agent.service"
Action = Literal["restarted", "deferred", "nothing"]
Ask = Callable[[Path, str], dict[str, Any]]


def socket_path(state_dir: Path) -> Path:
    """The agent's control socket in ``state_dir`` (as :class:`agent.store.StateDir` names it,
    without creating the directory)."""
    return Path(state_dir) / "agent.sock"


def marker(state_dir: Path) -> Path:
    """Where a deferred restart is recorded."""
    return Path(state_dir) / MARKER


def lock_of(state_dir: Path, ask: Ask = request) -> dict[str, Any] | None:
    """The running agent's lock (``{"locked": True, "window_id": …}``) if it holds one;
    None if it is not locked, or not running (nothing answers on its socket)."""
    try:
        reply = ask(socket_path(state_dir), "status")
    except (OSError, ValueError):
        return None
    lock = (reply.get("state") or {}).get("lock") or {}
    return lock if lock.get("locked") else None


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    """``systemctl ARGS`` (``$DIEMCAU_SYSTEMCTL`` replaces the command, e.g. in tests)."""
    cmd = shlex.split(os.environ.get("DIEMCAU_SYSTEMCTL", "systemctl"))
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def restart_or_defer(state_dir: Path, reason: str, unit: str = UNIT,
                     ask: Ask = request, clock: Callable[[], float] = time.time
                     ) -> tuple[Action, str]:
    """Restart ``unit`` unless the room is locked; then leave a marker for the timer."""
    lock = lock_of(state_dir, ask)
    if lock is not None:
        write_atomic(marker(state_dir), json.dumps(
            {"reason": reason, "since": clock(), "window_id": lock.get("window_id")},
            ensure_ascii=False).encode())
        window = f"{lock.get('kind') or 'window'} {lock.get('window_id')}"
        return "deferred", (f"restart deferred: the room is locked by {window}; "
                            "diemcau-agent-restart.timer restarts the agent when the lock ends "
                            f"(marker {marker(state_dir)})")
    r = systemctl("restart", unit)
    if r.returncode != 0:
        raise RuntimeError(f"systemctl restart {unit} failed: {(r.stderr or r.stdout).strip()}")
    marker(state_dir).unlink(missing_ok=True)
    return "restarted", f"restarted {unit} ({reason})"


def run_pending(state_dir: Path, unit: str = UNIT, ask: Ask = request) -> tuple[Action, str]:
    """The timer's job: carry out a deferred restart once the lock has ended."""
    path = marker(state_dir)
    try:
        reason = json.loads(path.read_bytes()).get("reason", "deferred restart")
    except FileNotFoundError:
        return "nothing", "no restart pending"
    except (OSError, ValueError, AttributeError):
        reason = "deferred restart"
    return restart_or_defer(state_dir, str(reason), unit, ask)
