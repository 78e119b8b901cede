"""SIGHUP (``systemctl reload diemcau-agent``) re-reads the site file: what can change live is
applied, anything else (or a file that no longer validates) is refused with every reason, and
the agent runs on either way: a real agent process, a real broker."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.control import request
from agent.reload import changed_fields, reload_problems
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import site_yaml, start_agent, status_when_up, watcher

RESTART = "restart the agent to apply it (sudo systemctl restart diemcau-agent)"


def test_sighup_applies_refuses_and_the_agent_runs_on(tmp_path: Path,
                                                      broker: LocalBroker) -> None:
    cfg = tmp_path / "site.yaml"
    original = site_yaml(broker)
    cfg.write_text(original)
    state = tmp_path / "st"
    log = tmp_path / "stderr"
    with watcher(broker) as w, log.open("wb") as err:
        proc = start_agent(cfg, broker, state, stderr=err.fileno())
        try:
            status_when_up(state, proc)
            w.event("agent_started", timeout=20)
            before = request(StateDir(state).socket_path, "status")["info"]
            assert before["devices"]["camera"]["label"] == "camera"

            # 1. Timing, a label and the log level: applied at once.
            live = original.replace("lead_min: 15", "lead_min: 20").replace(
                "camera: {role: camera,", 'camera: {role: camera, label: "Camera phòng họp",'
            ) + "log_level: DEBUG\n"
            cfg.write_text(live)
            proc.send_signal(signal.SIGHUP)
            done = w.event("config_reloaded", timeout=20)["data"]
            assert done["applied"] == ["devices.camera.label", "log_level", "timing.lead_min"]
            now = request(StateDir(state).socket_path, "status")["info"]
            assert now["config_hash"] == done["config_hash"] != before["config_hash"]
            assert now["devices"]["camera"]["label"] == "Camera phòng họp"
            # The retained info follows (contract 2.0: it is where labels and the hash are).
            w.wait("info", lambda i: i["devices"]["camera"]["label"] == "Camera phòng họp")
            deadline = time.monotonic() + 10
            while " DEBUG " not in log.read_text():   # the next publish is logged at DEBUG
                assert time.monotonic() < deadline, "the new log level was not applied"
                time.sleep(0.05)

            # 2. A pin (with a timing change beside it): refused as a whole, still running.
            cfg.write_text(live.replace("relay: {pin: 26}", "relay: {pin: 19}")
                           .replace("heartbeat_s: 30", "heartbeat_s: 45"))
            proc.send_signal(signal.SIGHUP)
            refused = w.event("config_reload_refused", timeout=20)["data"]
            assert refused["problems"] == [
                "devices.codec.relay.pin: changed, but relay pins are claimed at start; "
                + RESTART]
            assert proc.poll() is None
            after = request(StateDir(state).socket_path, "status")["info"]
            assert after["config_hash"] == done["config_hash"]   # nothing applied

            # 3. A file that no longer validates: every problem, still running and answering.
            cfg.write_text(live.replace("relay: {pin: 20}", "relay: {pin: 99}")
                           .replace("timing: {", "timing: {lead_minutes: 5, "))
            mark = len(w.messages)
            proc.send_signal(signal.SIGHUP)
            broken = w.wait("events", lambda e: e["kind"] == "config_reload_refused",
                            timeout=20, since=mark)
            problems = broken["data"]["problems"]
            assert len(problems) == 2
            assert any(p.startswith("devices.camera.relay.pin:") for p in problems)
            assert any(p.startswith("timing.lead_minutes: unknown field") for p in problems)
            assert proc.poll() is None
            assert request(StateDir(state).socket_path, "status")["ok"]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    assert not StateDir(state).socket_path.exists()   # a clean stop leaves no stale socket


@pytest.fixture
def yaml(broker: LocalBroker) -> str:
    return site_yaml(broker)


def test_what_can_change_live(yaml: str) -> None:
    old = parse_config(yaml)
    new = parse_config(
        yaml.replace("heartbeat_s: 30", "heartbeat_s: 40, check_timeout_s: 60")
        .replace('name: "Xã Thử"', 'name: "UBND xã Thử", district: "Văn Quan", language: en')
        .replace("+84 205 3830 000", "+84 205 3830 111")
        .replace("on_delay_s: 0, off_grace_s: 0}", "on_delay_s: 5, off_grace_s: 0, "
                                                   "self_help: true}"))
    assert reload_problems(old, new) == []
    assert changed_fields(old, new) == [
        "devices.codec.on_delay_s", "devices.codec.self_help", "site.district",
        "site.language", "site.name", "support", "timing.check_timeout_s", "timing.heartbeat_s"]
    assert changed_fields(old, old) == []


def test_what_needs_a_restart_and_why(yaml: str) -> None:
    old = parse_config(yaml)
    new = parse_config(
        yaml.replace("id: xa-thu", "id: xa-khac")
        .replace("keepalive_s: 5", "keepalive_s: 60")
        .replace("  amplifier: {role: amplifier, relay: {pin: 21}, order: 3, on_delay_s: 0}\n",
                 "  display: {role: display, relay: {pin: 21}, order: 3}\n")
        .replace("off_grace_s: 0}", "off_grace_s: 10}")
        .replace("hold_s: 0.5", "hold_s: 1"))
    assert reload_problems(old, new) == [
        f"broker.keepalive_s: changed, but the broker connection (address, TLS, credentials, "
        f"topics) is made at start; {RESTART}",
        f"button.hold_s: changed, but the button pin is claimed at start; {RESTART}",
        f"devices.amplifier: device removed; the devices are set up at start; {RESTART}",
        f"devices.codec.off_grace_s: changed, but the device's serial driver and health poller "
        f"are set up at start; {RESTART}",
        f"devices.display: device added; the devices are set up at start; {RESTART}",
        f"site.id: changed, but the site id is the room's identity (MQTT topics, broker user, "
        f"certificate); {RESTART}",
    ]
