"""The retained ``host`` message: the Pi's health, sent rarely but at once when it matters.

Sampled at every heartbeat (``timing.heartbeat_s``), published every ``timing.host_interval_s``
and at once when an alert starts or ends. An alert starts at its threshold and ends only
:data:`HYSTERESIS` below it, so a value hovering at the threshold does not publish every
heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.clock import iso_ms
from agent.host import host_health

THRESHOLDS: dict[str, tuple[str, float]] = {
    "cpu_temp": ("cpu_temp_c", 75.0),
    "disk": ("disk_used_pct", 90.0),
    "memory": ("mem_used_pct", 90.0),
}
"""alert name → (host field, threshold: the alert is on at or above it)."""
HYSTERESIS: dict[str, float] = {"cpu_temp": 3.0, "disk": 1.0, "memory": 2.0}
FIELDS = ("cpu_temp_c", "load", "mem_used_pct", "disk_used_pct", "uptime_s")


def alerts_for(sample: dict[str, Any], before: frozenset[str]) -> frozenset[str]:
    """The alerts on for ``sample``, given those on before (for the hysteresis)."""
    on = set()
    for name, (fld, limit) in THRESHOLDS.items():
        value = sample.get(fld)
        if not isinstance(value, int | float):
            if name in before:
                on.add(name)   # no reading: keep what was known
            continue
        if value >= limit or (name in before and value > limit - HYSTERESIS[name]):
            on.add(name)
    return frozenset(on)


class HostReporter:
    """Decides when ``host`` is published. ``sample`` gives :func:`agent.host.host_health`."""

    def __init__(self, interval_s: float,
                 sample: Callable[[], dict[str, Any]] = host_health) -> None:
        self.interval_s = interval_s
        self._sample = sample
        self.alerts: frozenset[str] = frozenset()
        self.last: dict[str, Any] | None = None
        self._due = True   # nothing published yet in this run
        self._last_sent_mono: float | None = None

    def poll(self, mono: float) -> None:
        """Take a sample now (at monotonic time ``mono``); an alert change makes it due."""
        self.last = self._sample()
        alerts = alerts_for(self.last, self.alerts)
        if alerts != self.alerts:
            self.alerts = alerts
            self._due = True
        if self._last_sent_mono is not None and mono - self._last_sent_mono >= self.interval_s:
            self._due = True

    def due(self, mono: float) -> bool:
        """Whether a host message should go out now."""
        if self._last_sent_mono is not None and mono - self._last_sent_mono >= self.interval_s:
            return True
        return self._due

    def next_due(self) -> float | None:
        """Monotonic time the interval runs out (None before the first publish)."""
        return None if self._last_sent_mono is None else self._last_sent_mono + self.interval_s

    def message(self, now: float) -> dict[str, Any]:
        """The host message for the last sample, stamped ``now`` (wall clock)."""
        if self.last is None:
            self.last = self._sample()
            self.alerts = alerts_for(self.last, self.alerts)
        msg = {k: self.last.get(k) for k in FIELDS}
        msg["alerts"] = sorted(self.alerts)
        msg["ts"] = iso_ms(now)
        return msg

    def sent(self, mono: float) -> None:
        """The message went to paho (retained: the broker keeps the latest)."""
        self._due = False
        self._last_sent_mono = mono
