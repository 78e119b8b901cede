"""Host health of the Pi itself, from psutil: temperature, load, memory, disk, uptime."""

from __future__ import annotations

import os
import time
from typing import Any

import psutil


def cpu_temperature() -> float | None:
    """The SoC temperature in °C where the board has a sensor (a Pi does), else ``None``."""
    try:
        temps = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        return None
    for name in ("cpu_thermal", "soc_thermal", "coretemp", "k10temp", "acpitz"):
        for reading in temps.get(name, []):
            if reading.current is not None:
                return round(float(reading.current), 1)
    for readings in temps.values():
        for reading in readings:
            return round(float(reading.current), 1)
    return None


def host_health(disk_path: str = "/") -> dict[str, Any]:
    """One sample, JSON-ready; every field may be ``None`` where the host cannot tell."""
    mem = psutil.virtual_memory()
    try:
        disk = psutil.disk_usage(disk_path)
        disk_pct: float | None = disk.percent
        disk_free_mb: int | None = disk.free // (1024 * 1024)
    except OSError:
        disk_pct = disk_free_mb = None
    load1, load5, load15 = os.getloadavg()
    return {
        "cpu_temp_c": cpu_temperature(),
        "load": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "cpu_count": psutil.cpu_count() or 1,
        "mem_used_pct": round(mem.percent, 1),
        "mem_available_mb": mem.available // (1024 * 1024),
        "disk_used_pct": disk_pct,
        "disk_free_mb": disk_free_mb,
        "uptime_s": int(time.time() - psutil.boot_time()),
    }
