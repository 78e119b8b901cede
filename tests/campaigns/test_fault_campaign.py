"""The fault campaign, short: a few random cycles of agent kills, broker kills, link cuts,
windows, button presses and district commands; nothing lost, nothing unsafe, no crash.
The long one is ``bench/fault_campaign.py --cycles N`` (``bench/README.md``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.config import parse_config
from agent.core.events import Tick
from agent.hardware.pins import mock_factory
from agent.link.mqtt import Incoming
from agent.runtime import Agent, LocalCall
from agent.store import StateDir
from bench.fault_campaign import SITE, run_campaign, site_config_text, unsafe_transitions


def ev(seq: int, ts: float, kind: str, **data: object) -> dict[str, object]:
    from agent.outbox import iso_ms
    return {"seq": seq, "ts": iso_ms(ts), "kind": kind, "data": data}


def write_pins(path: Path, lines: list[tuple[float, str, int, int, str]]) -> Path:
    path.write_text("".join(f"{t:.6f} {pin} {level} 1 {seq}:{why}\n"
                            for t, pin, level, seq, why in lines))
    return path


def test_detector_flags_only_unexplained_switch_offs_during_a_lock(tmp_path: Path) -> None:
    t0 = 1_800_000_000.0
    events = [
        ev(1, t0 + 1, "lock_engaged", window_id="w1"),
        ev(2, t0 + 3, "lock_overridden", window_id="w1", device="camera", command_id="c1"),
        ev(3, t0 + 5, "lock_released", window_id="w1", reason="completed"),
        # The clock jumps back an hour: times no longer say anything, event numbers do.
        ev(4, t0 - 3600, "lock_engaged", window_id="w2"),       # still locked at the end
    ]
    pins = write_pins(tmp_path / "pins.log", [
        # (time, pin, level, next event seq when it moved, reason of its sequence)
        (t0 + 0.5, "GPIO26", 0, 1, "local:cli"),      # before the lock: allowed
        (t0 + 0.6, "GPIO26", 1, 1, "local:cli"),
        (t0 + 2.0, "GPIO21", 0, 2, "local:button"),   # during the lock, no override: UNSAFE
        (t0 + 2.1, "GPIO21", 1, 2, "window:w1"),
        (t0 + 3.2, "GPIO20", 0, 3, "override:c1"),    # the district's override: explained
        (t0 + 3.3, "GPIO20", 1, 3, "window:w1"),
        (t0 + 3.4, "GPIO26", 0, 3, "self_help:codec"),  # self-help during a lock: UNSAFE
        (t0 + 3.45, "GPIO26", 1, 3, "self_help:codec"),
        (t0 + 5.0, "GPIO21", 0, 4, "local:cli"),      # after the release: allowed
        (t0 + 6.0, "GPIO21", 1, 4, "local:cli"),
        (t0 + 9.0, "GPIO17", 0, 4, "-"),              # the LED, not a relay
        (t0 - 3000, "GPIO26", 0, 5, "local:cli"),     # during w2, clock behind: UNSAFE
        (t0 - 2990, "GPIO20", 0, 5, "override:c9"),   # during w2, override: explained
    ])
    details, offs, explained = unsafe_transitions(events, pins)
    assert len(details) == 3, details
    assert [d.split()[0] for d in details] == ["amplifier", "codec", "codec"]
    assert offs == 7 and explained == 2


def test_short_fault_campaign(short_tmp: Path) -> None:
    started = time.monotonic()
    figs = run_campaign(cycles=8, seed=20261129, workdir=short_tmp)
    print(figs.table())
    assert figs.cycles == 8
    assert figs.generated > 0 and figs.delivered > 0
    assert figs.unsafe == 0, figs.unsafe_detail
    assert figs.lost == 0, figs.lost_seqs
    assert figs.crashes == 0, figs.crash_detail
    assert figs.handled_twice == 0
    assert time.monotonic() - started < 60




def locked_room(state: StateDir, clock: Any) -> tuple[Agent, Any]:
    """A room (in process, no broker, clock not synchronised) locked by window w1, which
    started 30 s after ``clock()`` and is planned to end 1 minute later (hard cap: 1 min)."""
    cfg = parse_config(site_config_text(port=1883))
    room = Agent(cfg, mock_factory(), state, clock=clock, connect=False,
                 clock_synced=lambda: False)
    room.start()
    start = datetime.fromtimestamp(clock(), UTC) + timedelta(seconds=30)
    schedule = json.dumps({"version": "v1", "site": SITE, "windows": [
        {"id": "w1", "kind": "session", "title": "", "start": start.isoformat(),
         "end": (start + timedelta(minutes=1)).isoformat()}]}).encode()
    room.handle(Incoming("schedule", schedule, retained=True))
    assert room.state.locked_by == "w1"
    return room, cfg


def restart(room: Agent, cfg: Any, state: StateDir, clock: Any) -> Agent:
    room.close()
    again = Agent(cfg, mock_factory(), state, clock=clock, connect=False,
                  clock_synced=lambda: False)
    again.start()
    again.feed(Tick())
    return again


def test_restart_during_a_lock_reports_no_release(short_tmp: Path) -> None:
    state = StateDir(short_tmp / "state")
    room, cfg = locked_room(state, time.time)
    before = room.outbox.next_seq()
    room = restart(room, cfg, state, time.time)
    try:
        assert room.state.locked_by == "w1"
        kinds = [r.kind for r in room.outbox.pending() if r.seq >= before]
        assert "lock_released" not in kinds, kinds
    finally:
        room.close()


def test_restart_keeps_the_lock_past_the_cap_while_the_clock_is_untrusted(short_tmp: Path,
                                                                          ) -> None:
    now = [time.time()]
    state = StateDir(short_tmp / "state")
    room, cfg = locked_room(state, lambda: now[0])
    now[0] += 600            # the session overruns; no NTP, so the clock may be wrong anyway
    room.feed(Tick())
    assert room.state.locked_by == "w1"      # time alone never ends the lock...
    room = restart(room, cfg, state, lambda: now[0])
    try:
        assert room.state.locked_by == "w1"  # ...not even across a restart
        assert room.handle(LocalCall("off", lambda reply: None)) is None
        assert all(room.state.relays.values()), "switched off during the lock"
    finally:
        room.close()
