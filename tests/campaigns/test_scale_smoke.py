"""The scale bench in small: 12 simulated rooms in two processes, Mosquitto with a district's
limits, the console on PostgreSQL; a window for every room (lock, power-up, check,
completion, switch-off), a broker restart, and the dashboard in the real Chromium (first
load, a live update). Nothing lost, nothing stored twice, every figure of the goals table
measured (no timing is asserted: the figures are in docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

from bench.scale import Bench


def test_scale_smoke(short_tmp: Path) -> None:
    figures = Bench(12, short_tmp / "scale", recorders=1, sims=2, lead_s=3.0, max_s=150,
                    fsync=False, quick=True, say=lambda _m: None).run()
    table = figures.table()
    assert figures.lost == 0, table
    assert figures.duplicates == 0, table
    assert figures.pending == 0, table
    assert figures.made == figures.acked == figures.stored, table
    assert [p.name for p in figures.phases] == ["connect", "window", "reconnect", "dashboard"]
    assert all(p.drained is not None for p in figures.phases), table
    window = figures.rows["window"]
    # Every room went through the whole window: at least lock, power-up, sequence, steps,
    # ready, check, completion, release and the switch-off after it.
    assert window["events"] >= 12 * 12, table
    assert figures.rows["reconnect"]["online"] == 12, table
    assert "events lost (must be 0)" in table
    # Every room received its schedule (counted by the simulators), the dashboard showed
    # every room on its first page and each help request live.
    assert figures.dispatched == 12 and figures.dispatch_s is not None, table
    assert len(figures.first_load_s) == 4 and figures.page_tiles == 12, table
    assert len(figures.live_delay_s) == 5, table
    goals = figures.goal_table()
    for metric in ("dispatch: every room has its schedule", "lag p99, window storm",
                   "dashboard first load (cold)", "live update delay (median)",
                   "events lost", "duplicates stored"):
        assert metric in goals, goals
    assert "FAIL" not in goals, goals
