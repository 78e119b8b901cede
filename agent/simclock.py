"""A simulated room's wall clock: real time plus an offset that can jump, and an NTP flag.

``diemcau-agent clock:+600 --state-dir ...`` (or ``clock:-3600``) moves it, ``sync:0`` /
``sync:1`` says whether NTP has synchronised it, as a Pi without a real-time clock sees after a
boot, a bad NTP server or a link that never reached one. Both survive a restart of the simulated
agent (kept in the state directory), as a wrong clock survives an agent restart on a Pi.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.clock import clock_synchronized
from agent.store import write_atomic


class SimClock:
    """``now()`` for the agent and its pins; ``synced()`` for the time rules."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "sim-clock.json"
        self.offset = 0.0
        self.ntp: bool | None = None   # None: ask the machine, as a real room does
        try:
            data = json.loads(self.path.read_text())
            self.offset = float(data.get("offset", 0.0))
            self.ntp = data.get("synced")
        except (OSError, ValueError, AttributeError):
            pass

    def now(self) -> float:
        return time.time() + self.offset

    def synced(self) -> bool:
        return clock_synchronized() if self.ntp is None else bool(self.ntp)

    def jump(self, seconds: float) -> None:
        self.offset += seconds
        self._save()

    def set_synced(self, synced: bool | None) -> None:
        self.ntp = synced
        self._save()

    def _save(self) -> None:
        write_atomic(self.path, json.dumps({"offset": self.offset, "synced": self.ntp}).encode())
