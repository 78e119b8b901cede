"""The operator's command line under contract 2.0: a simulated press or hold says what the
room did with it, ``diemcau-agent help`` asks the centre for help through the control socket,
and operator texts name the centre from the config, never a hard-coded "huyện"."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.cli import cmd_local, describe, describe_outcome, serve
from agent.core.events import HelpRequested
from agent.hardware.pins import mock_factory
from agent.link.info import centre_names
from agent.runtime import Agent, Stop
from agent.store import StateDir
from tests.agent.harness import offline_config

ROOT = Path(__file__).resolve().parents[2]
CENTRE = {"vi": "Trung tâm CNTT tỉnh Lạng Sơn", "en": "the Lạng Sơn IT centre"}


def local(state: Path, op: str) -> argparse.Namespace:
    return argparse.Namespace(state_dir=str(state), cmd=op, json=False, config=None)


def test_help_puts_a_help_request_on_the_queue_and_says_what_happened(
        short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agent = Agent(offline_config(), mock_factory(), StateDir(short_tmp / "st"), connect=False)
    fed: list[Any] = []
    real = agent.feed

    def feed(event: Any) -> Any:
        fed.append(event)
        return real(event)

    agent.feed = feed  # type: ignore[method-assign]
    stop = threading.Event()
    loop = threading.Thread(target=serve, args=(agent, True, stop), daemon=True)
    loop.start()
    try:
        assert agent.started.wait(10)
        assert cmd_local(local(short_tmp / "st", "help")) == 0
        assert HelpRequested("cli") in fed
        out = capsys.readouterr().out
        assert "Đã báo trung tâm cần hỗ trợ" in out and "has been asked for help" in out
        assert "huyện" not in out
        assert agent.state_message()["operator"]["help_requested"] is not None
    finally:
        stop.set()
        agent.queue.put(Stop())
        loop.join(15)
    assert not loop.is_alive()


def test_outcomes_name_the_centre_from_the_config() -> None:
    refused = {"kind": "shutdown_refused", "window_id": "s1",
               "data": {"source": "button", "kind": "session", "title": "Họp UBND tỉnh"}}
    text = describe_outcome([refused], CENTRE)
    assert "KHÔNG ĐƯỢC TẮT" in text and "Họp UBND tỉnh" in text
    assert CENTRE["vi"] in text and CENTRE["en"] in text
    helped = describe_outcome([{"kind": "help_requested", "data": {"source": "cli"}}], CENTRE)
    assert CENTRE["vi"] in helped
    assert "The Lạng Sơn IT centre has been asked for help" in helped
    on = describe_outcome([{"kind": "power_requested", "data": {"on": True, "source": "cli"}},
                           {"kind": "power_sequence_started",
                            "data": {"on": True, "reason": "local:cli",
                                     "devices": ["codec", "camera"]}}], CENTRE)
    assert "Switching on in order: codec, camera" in on
    assert "already" not in on
    ack = describe_outcome([{"kind": "operator_check_acknowledged",
                             "data": {"check_id": "k1", "latency_s": 4.2}}], CENTRE)
    assert "4.2" in ack and CENTRE["vi"] in ack


def test_the_centre_falls_back_to_a_generic_name() -> None:
    assert centre_names(offline_config()) == ("trung tâm", "the centre")
    state: dict[str, Any] = {
        "site": "xa-thu", "power": "on", "devices": {}, "lock": {"locked": False},
        "window": None, "next_window": None, "operator": {"check": {"id": "k"},
                                                          "help_requested": None},
        "link": {"since": None, "reconnects": 0},
        "schedule": {"version": "", "digest": None, "rejected": None}, "led": "on"}
    text = describe(state, info={"name": "Xã Thử", "support": []}, centre=None)
    assert "Kết nối trung tâm / Link to the centre: mất / not connected" in text
    assert "Trung tâm đang hỏi có người trực" in text
    text = describe(state, info={"name": "Xã Thử"}, centre=CENTRE)
    assert f"Kết nối {CENTRE['vi']}" in text


def test_no_hard_coded_district_in_operator_texts() -> None:
    assert "huyện" not in (ROOT / "agent" / "cli.py").read_text().lower()
