"""``systemd.status_line``: what ``systemctl status diemcau-agent`` shows of a room's state."""

from __future__ import annotations

import time
from pathlib import Path

from agent import systemd
from agent.config import parse_config
from agent.core.events import ScheduleReceived, Window
from agent.hardware.pins import mock_factory
from agent.runtime import Agent
from agent.store import StateDir

SITE = """\
site: {id: xa-thu, name: "Xã Thử"}
devices:
  codec: {role: codec, relay: {pin: 26}, order: 1, on_delay_s: 0, off_grace_s: 0}
timing: {lead_min: 15}
"""


def test_locked_idle_and_empty() -> None:
    locked = {"lock": {"locked": True, "kind": "session", "window_id": "s1",
                       "since": "2026-11-29T06:30:00.000Z",
                       "released_by_cap_at": "2026-11-29T15:00:00.000Z"},
              "window": {"title": "Họp\ntháng"}, "power": "on", "broker_connected": True}
    assert systemd.status_line(locked, "Asia/Ho_Chi_Minh") == (
        "LOCKED by session s1 «Họp tháng» since 13:30 (cap 22:00) | power on | link up")
    idle = {"lock": {"locked": False}, "power": "off", "broker_connected": False,
            "next_window": {"kind": "test", "id": "t2", "title": "Kiểm tra",
                            "start": "2026-11-29T07:00:00.000Z"}}
    assert systemd.status_line(idle, "Asia/Ho_Chi_Minh") == (
        "idle, next test t2 «Kiểm tra» at 14:00 | power off | link down")
    assert systemd.status_line({}, None) == "idle, no window scheduled | power ? | link down"


def test_from_a_real_agents_state(tmp_path: Path) -> None:
    agent = Agent(parse_config(SITE), mock_factory(), StateDir(tmp_path / "st"), connect=False)
    agent.start()
    try:
        now = time.time()
        agent.feed(ScheduleReceived((Window("s1", "session", now + 60, now + 3600, "Họp"),),
                                    "v1"))
        line = systemd.status_line(agent.state_message(), agent.cfg.site.timezone)
        assert line.startswith("LOCKED by session s1 «Họp» since ")
        assert line.endswith("| link down")
    finally:
        agent.close()
