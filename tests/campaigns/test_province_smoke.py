"""The province bench in small (``bench/province.py``): a province broker and two district
brokers made by ``diemcau-broker``, both bridges up, three consoles on PostgreSQL (district A's
on its own broker, one per district on the province broker through the bridge), 10 simulated
rooms per district and a burst of 3 events from each. Every console stores every event its
district's broker acknowledged, once; everything the bench started is gone afterwards. No
timing is asserted (the figures are in docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from bench import province

ROOMS, EVENTS = 10, 3


def _row(table: str, label: str) -> list[str]:
    """The three console columns of the table row starting with ``label``."""
    for line in table.splitlines():
        if line.strip().startswith(label):
            return line.strip()[len(label):].split()[:3]
    raise AssertionError(f"no row {label!r} in\n{table}")


def test_province_smoke(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    rc = province.main(["--rooms-per-district", str(ROOMS), "--events", str(EVENTS),
                        "--no-fsync", "--max-s", "300", "--workdir", str(short_tmp / "p")])
    table = capsys.readouterr().out
    assert rc == 0, table   # every console stored every acknowledged event, once
    heads = _row(table, "console")
    assert " ".join(heads) == "vanquan direct vanquan", table
    assert _row(table, "broker it reads") == ["vanquan", "langson", "langson"], table
    assert _row(table, "rooms online") == [str(ROOMS)] * 3, table
    burst = str(ROOMS * EVENTS)
    assert _row(table, "burst events acked by district") == [burst] * 3, table
    assert _row(table, "burst events stored") == [burst] * 3, table
    assert _row(table, "events lost (must be 0)") == ["0"] * 3, table
    assert _row(table, "duplicates stored (must be 0)") == ["0"] * 3, table
    for label in ("lag p50, room send -> stored (s)", "lag p99 (s)", "lag max (s)",
                  "all stored after the burst (s)"):
        assert all(float(v) >= 0 for v in _row(table, label)), table
    # Torn down: brokers (their pid files), consoles, simulators.
    assert not list((short_tmp / "p").glob("*/mosquitto.pid")), table
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
