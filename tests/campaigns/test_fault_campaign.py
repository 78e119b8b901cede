"""The fault campaign, short: a few random cycles of agent kills, broker kills, link cuts,
windows, button presses and district commands; nothing lost, nothing unsafe, no crash.
The long one is ``bench/fault_campaign.py --cycles N`` (``bench/README.md``)."""

from __future__ import annotations

import time
from pathlib import Path

from bench.fault_campaign import run_campaign, unsafe_transitions


def ev(seq: int, ts: float, kind: str, **data: object) -> dict[str, object]:
    from agent.outbox import iso_ms
    return {"seq": seq, "ts": iso_ms(ts), "kind": kind, "data": data}


def write_pins(path: Path, lines: list[tuple[float, str, int]]) -> Path:
    path.write_text("".join(f"{t:.6f} {pin} {level} 1\n" for t, pin, level in lines))
    return path


def test_detector_flags_only_unexplained_switch_offs_during_a_lock(tmp_path: Path) -> None:
    t0 = 1_800_000_000.0
    events = [
        ev(1, t0 + 1, "lock_engaged", window_id="w1"),
        ev(2, t0 + 3, "lock_overridden", window_id="w1", device="camera", command_id="c1"),
        ev(3, t0 + 3.5, "power_sequence_finished", reason="override:c1"),
        ev(4, t0 + 5, "lock_released", window_id="w1", reason="completed"),
        ev(5, t0 + 8, "lock_engaged", window_id="w2"),          # still locked at the end
    ]
    pins = write_pins(tmp_path / "pins.log", [
        (t0 + 0.5, "GPIO26", 0),   # before the lock: allowed
        (t0 + 0.6, "GPIO26", 1),
        (t0 + 2.0, "GPIO21", 0),   # during the lock, no override: UNSAFE
        (t0 + 2.1, "GPIO21", 1),
        (t0 + 3.2, "GPIO20", 0),   # the overridden device, during its sequence: explained
        (t0 + 3.3, "GPIO20", 1),
        (t0 + 3.4, "GPIO26", 0),   # another device during that override: UNSAFE
        (t0 + 3.45, "GPIO26", 1),
        (t0 + 4.0, "GPIO20", 0),   # after the override's sequence finished: UNSAFE
        (t0 + 4.1, "GPIO20", 1),
        (t0 + 5.0005, "GPIO21", 0),  # the instant after the release: allowed
        (t0 + 6.0, "GPIO21", 1),
        (t0 + 9.0, "GPIO17", 0),   # the LED, not a relay
        (t0 + 9.5, "GPIO26", 0),   # during the lock still open at the end: UNSAFE
    ])
    details, offs, explained = unsafe_transitions(events, pins, t0 + 10)
    assert len(details) == 4, details
    assert [d.split()[0] for d in details] == ["amplifier", "codec", "camera", "codec"]
    assert offs == 7 and explained == 1


def test_short_fault_campaign(short_tmp: Path) -> None:
    started = time.monotonic()
    figs = run_campaign(cycles=8, seed=20261129, workdir=short_tmp)
    print(figs.table())
    assert figs.cycles == 8
    assert figs.generated > 0 and figs.delivered > 0
    assert figs.unsafe == 0, figs.unsafe_detail
    assert figs.lost == 0, figs.lost_seqs
    assert figs.crashes == 0, figs.crash_detail
    assert time.monotonic() - started < 60

