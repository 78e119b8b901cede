"""The operator's command line under contract 2.0: a simulated press or hold says what the
room did with it, ``diemcau-agent help`` asks the centre for help through the control socket,
and operator texts name the centre from the config, never a hard-coded "huyện", in one
language at a time."""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent import operator_text as text
from agent.cli import cmd_local, serve
from agent.core.events import HelpRequested
from agent.hardware.pins import mock_factory
from agent.link.info import centre_names
from agent.runtime import Agent, Stop
from agent.store import StateDir
from tests.agent.harness import offline_config

ROOT = Path(__file__).resolve().parents[2]
CENTRE = {"vi": "Trung tâm CNTT tỉnh Lạng Sơn", "en": "the Lạng Sơn IT centre"}
ROOM = text.Room(name="Xã Thử", centre=(CENTRE["vi"], CENTRE["en"]))
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def local(state: Path, op: str, lang: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(state_dir=str(state), cmd=op, json=False, config=None, lang=lang)


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
        # The room's language (site.language, default vi), and only that one.
        assert "Đã báo trung tâm cần hỗ trợ" in out and "asked for help" not in out
        assert "huyện" not in out
        assert cmd_local(local(short_tmp / "st", "help", "en")) == 0
        out = capsys.readouterr().out
        assert "The centre has been asked for help" in out and "trung tâm" not in out
        assert agent.state_message()["operator"]["help_requested"] is not None
    finally:
        stop.set()
        agent.queue.put(Stop())
        loop.join(15)
    assert not loop.is_alive()


def test_outcomes_name_the_centre_from_the_config() -> None:
    refused = {"kind": "shutdown_refused", "window_id": "s1",
               "data": {"source": "button", "kind": "session", "title": "Họp UBND tỉnh"}}
    state = {"window": {"id": "s1", "kind": "session", "title": "Họp UBND tỉnh",
                        "start": "2026-12-01T02:00:00.000Z", "end": "2026-12-01T04:00:00.000Z"}}
    vi = text.outcome([refused], ROOM, "vi", NOW, state)
    assert "KHÔNG ĐƯỢC TẮT" in vi and "Họp UBND tỉnh" in vi and "đến 11:00" in vi
    assert CENTRE["vi"] in vi and CENTRE["en"] not in vi
    en = text.outcome([refused], ROOM, "en", NOW, state)
    assert "Not switched off" in en and "until 11:00" in en and CENTRE["en"] in en
    helped = [{"kind": "help_requested", "data": {"source": "cli"}}]
    assert CENTRE["vi"] in text.outcome(helped, ROOM, "vi", NOW)
    assert "The Lạng Sơn IT centre has been asked for help" in text.outcome(helped, ROOM, "en",
                                                                             NOW)
    on = text.outcome([{"kind": "power_requested", "data": {"on": True, "source": "cli"}},
                       {"kind": "power_sequence_started",
                        "data": {"on": True, "reason": "local:cli",
                                 "devices": ["codec", "camera"]}}],
                      text.Room(labels={"codec": "Codec Cisco"}), "en", NOW)
    assert "Switching on in order: Codec Cisco, camera" in on   # the label from the config
    assert "already" not in on
    ack = text.outcome([{"kind": "operator_check_acknowledged",
                         "data": {"check_id": "k1", "latency_s": 4.2}}], ROOM, "vi", NOW)
    assert "4.2" in ack and CENTRE["vi"] in ack


def test_the_centre_falls_back_to_a_generic_name() -> None:
    assert centre_names(offline_config()) == ("trung tâm", "the centre")
    state: dict[str, Any] = {
        "site": "xa-thu", "power": "on", "devices": {}, "lock": {"locked": False},
        "window": None, "next_window": None, "operator": {"check": {"id": "k"},
                                                          "help_requested": None},
        "link": {"since": None, "reconnects": 0},
        "schedule": {"version": "", "digest": None, "rejected": None}, "led": "on"}
    vi = text.status(state, text.Room.from_reply({"info": {"name": "Xã Thử", "support": []}}),
                     "vi", NOW)
    assert "Kết nối với trung tâm: mất kết nối" in vi
    assert "Trung tâm đang hỏi có người trực" in vi
    en = text.status(state, text.Room(name="Xã Thử"), "en", NOW)
    assert "Link to the centre: down" in en and "The centre is asking" in en
    vi = text.status(state, ROOM, "vi", NOW)
    assert f"Kết nối với {CENTRE['vi']}" in vi


def test_no_hard_coded_district_in_operator_texts() -> None:
    for name in ("cli.py", "operator_text.py", "ledcard.py"):
        assert "huyện" not in (ROOT / "agent" / name).read_text().lower(), name
    shown = " ".join(w for pair in text.WORDS.values() for w in pair).lower()  # the card's too
    assert "huyện" not in shown and "district" not in shown


def test_a_selftest_cut_short_by_a_restart_says_so() -> None:
    result = {"devices": [{"device": "codec", "ok": False, "off": "confirmed",
                           "on": "not_done", "relay": False}],
              "finished": {"ok": False, "failed": ["codec", "camera"], "elapsed_s": 12.0,
                           "interrupted_by": "restart"}}
    vi = text.selftest(result, ROOM, "vi")
    assert "Tự kiểm tra bị dừng giữa chừng: trợ lý điểm cầu khởi động lại." in vi
    en = text.selftest(result, ROOM, "en")
    assert "The self-test was stopped early: the room agent restarted." in en
    assert "  • camera: not tested." in en
