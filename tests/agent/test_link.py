"""The room agent against a real Mosquitto: availability and last will, commands and replies,
refused local shutdown, the schedule cache across a restart with the broker down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from agent.control import request
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import (
    SITE,
    running,
    schedule,
    site_config,
    site_yaml,
    start_agent,
    watcher,
)


def test_online_then_offline_after_sigkill(broker: LocalBroker, short_tmp: Path) -> None:
    cfg_path = short_tmp / "site.yaml"
    cfg_path.write_text(site_yaml(broker))
    with watcher(broker) as w:
        proc = start_agent(cfg_path, broker, short_tmp / "state", subprocess.PIPE)
        try:
            w.availability("online", timeout=20)
            state = w.wait("state")
            assert state["site"] == SITE and state["api"] == "2.1"
            assert w.wait("info")["agent_version"]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            w.availability("offline")   # the last will, published by the broker
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()


def test_sigterm_stops_cleanly_and_says_offline(broker: LocalBroker, short_tmp: Path) -> None:
    cfg_path = short_tmp / "site.yaml"
    cfg_path.write_text(site_yaml(broker))
    with watcher(broker) as w:
        proc = start_agent(cfg_path, broker, short_tmp / "state", subprocess.PIPE)
        w.availability("online", timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        assert "room xa-thu stopped" in err and "Traceback" not in err
        w.availability("offline")
        # A clean stop says offline itself: the retained value is offline.
        assert w.messages[-1][1] == b"offline" or any(
            t == "availability" and p == b"offline" for t, p, _ in w.messages)


def test_command_switches_relay_and_state_and_reply(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = site_config(broker)
    with watcher(broker) as w, running(cfg, short_tmp / "state") as room:
        w.availability("online")
        reply = w.command("c1", "power", on=False, device="camera")
        assert reply["status"] == "accepted" and reply["site"] == SITE
        state = w.wait("state", lambda s: s["devices"]["camera"]["power"] == "off")
        assert state["devices"]["codec"]["power"] == "on"
        # Default wiring: active-low coil on the NC contact -> camera off = coil energised (low).
        assert room.factory.pin(20).state is False
        step = w.event("power_step", device="camera")
        assert step["data"]["on"] is False and step["data"]["reason"] == "district:c1"
        assert isinstance(step["seq"], int) and len(step["id"]) >= 16
        # The same command id again is not carried out twice: it gets the first reply again,
        # word for word, whatever it asks this time.
        again = w.command("c1", "power", on=True, device="camera")
        assert again == reply
        first, second = w.raw_replies("c1")
        assert first == second
        w.command("c1-probe", "request_state")
        assert room.factory.pin(20).state is False
        assert [e["data"]["reason"] for e in w.events()
                if e["kind"] == "power_sequence_started"].count("district:c1") == 1


def test_bad_payloads_get_a_reason_and_change_nothing(broker: LocalBroker,
                                                       short_tmp: Path) -> None:
    cfg = site_config(broker)
    with watcher(broker) as w, running(cfg, short_tmp / "state") as room:
        w.availability("online")
        before = w.wait("state")
        w.publish("commands", b"\xff\xfe not utf-8")
        r = w.wait("replies", lambda r: "not UTF-8" in r["reason"])
        assert r["status"] == "invalid" and r["command_id"] is None
        w.publish("commands", b"{not json")
        assert w.wait("replies", lambda r: "not JSON" in r["reason"])["status"] == "invalid"
        r = w.command("b1", "power", on="maybe")
        assert r["status"] == "invalid" and r["reason"].startswith("args.on: ")
        r = w.command("b2", "power", on=False, overide=True)
        assert r["status"] == "invalid" and "args.overide: unknown field" in r["reason"]
        r = w.command("b3", "self_destruct")
        assert r["status"] == "invalid" and "unknown command 'self_destruct'" in r["reason"]
        w.publish("commands", {"id": "b4", "name": "power", "args": {"on": False},
                               "site": "xa-khac"})
        r = w.wait("replies", lambda r: r["command_id"] == "b4")
        assert r["status"] == "invalid" and "not 'xa-khac'" in r["reason"]
        deep: object = 0
        for _ in range(100):
            deep = [deep]
        w.publish("commands", {"id": "b5", "name": "power", "args": deep})
        r = w.wait("replies", lambda r: r["command_id"] == "b5")
        assert r["status"] == "invalid" and "nested deeper" in r["reason"]
        after = request(room.agent.store.socket_path, "status")["state"]
        assert after["devices"] == before["devices"] and after["power"] == before["power"]


def test_local_shutdown_refused_during_window(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = site_config(broker)
    with watcher(broker) as w, running(cfg, short_tmp / "state") as room:
        w.availability("online")
        # The test starts in 10 minutes; the 15-minute lead has begun: the room locks now.
        w.publish("schedule", schedule(10), retain=True)
        w.event("lock_engaged", window_id="t1")
        # The operator holds the button...
        pin = room.factory.pin(16)
        pin.drive_low()
        refused = w.event("shutdown_refused", source="button")
        pin.drive_high()
        assert refused["window_id"] == "t1"
        state = w.wait("state", lambda s: s["led"] == "refused")
        assert state["lock"]["locked"] is True and state["power"] == "on"
        # ...and the local CLI is refused the same way.
        reply = request(room.agent.store.socket_path, "off")
        assert reply["ok"] is False and reply["refused"]["window_id"] == "t1"
        w.event("shutdown_refused", source="cli")
        assert all(room.factory.pin(n).state is True for n in (26, 20, 21))  # all still powered
        # The district marks the test complete: now the operator may switch off.
        assert w.command("done", "complete_window", window_id="t1")["status"] == "accepted"
        w.event("lock_released", window_id="t1", reason="completed")
        reply = request(room.agent.store.socket_path, "off")
        assert reply["ok"] is True
        w.wait("state", lambda s: s["power"] == "off")


def test_operator_check_over_mqtt(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = site_config(broker)
    with watcher(broker) as w, running(cfg, short_tmp / "state") as room:
        w.availability("online")
        assert w.command("k1", "operator_check", timeout_s=60)["status"] == "accepted"
        w.wait("state", lambda s: s["led"] == "check_requested")
        pin = room.factory.pin(16)
        pin.drive_low()
        pin.drive_high()
        ack = w.event("operator_check_acknowledged", check_id="k1")
        assert ack["data"]["latency_s"] >= 0
        w.wait("state", lambda s: s["operator"]["last_ack"] is not None)


def test_schedule_used_after_restart_with_broker_down(broker: LocalBroker,
                                                      short_tmp: Path) -> None:
    cfg = site_config(broker)
    state_dir = short_tmp / "state"
    with watcher(broker) as w:
        with running(cfg, state_dir):
            w.availability("online")
            w.publish("schedule", schedule(60, wid="s1", kind="session", version="v7"),
                      retain=True)
            w.wait("state", lambda s: s["schedule"]["version"] == "v7")
        w.close()
    broker.stop()
    assert StateDir(state_dir).load_schedule() is not None
    # The broker is down: the new agent knows the schedule from its cache.
    with running(cfg, state_dir) as room:
        status = request(room.agent.store.socket_path, "status")["state"]
        assert status["link"]["since"] is None
        assert status["schedule"]["version"] == "v7"
        assert status["next_window"]["id"] == "s1"
        assert status["led"] == "no_broker"
        # Events made while the broker was down reach the district once it is back.
        assert request(room.agent.store.socket_path, "off")["ok"] is True
        broker.start()
        with watcher(broker) as w2:
            w2.availability("online", timeout=30)
            w2.event("power_requested", on=False, source="cli", timeout=30)
            seqs = [e["seq"] for e in w2.events()]
            assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def test_simulated_button_from_the_command_line(broker: LocalBroker, short_tmp: Path) -> None:
    cfg_path = short_tmp / "site.yaml"
    cfg_path.write_text(site_yaml(broker))
    state = short_tmp / "state"
    with watcher(broker) as w:
        proc = start_agent(cfg_path, broker, state, subprocess.PIPE)
        try:
            w.availability("online", timeout=20)
            w.publish("schedule", schedule(5), retain=True)
            w.event("lock_engaged", window_id="t1")
            run = [sys.executable, "-m", "agent"]
            press = subprocess.run([*run, "press", "--state-dir", str(state)],
                                   capture_output=True, text=True, timeout=30)
            assert press.returncode == 0, press.stderr
            # Not a bare OK: what the room did with the press, in the room's language only.
            assert "Đã điểm danh" in press.stdout and "Checked in" not in press.stdout
            w.event("check_in", window_id="t1")
            hold = subprocess.run([*run, "hold", "--state-dir", str(state)],
                                  capture_output=True, text=True, timeout=30)
            assert hold.returncode == 0
            assert "KHÔNG ĐƯỢC TẮT" in hold.stdout and "Not switched off" not in hold.stdout
            w.event("shutdown_refused", source="button")
            off = subprocess.run([*run, "off", "--state-dir", str(state)],
                                 capture_output=True, text=True, timeout=30)
            assert off.returncode == 1 and "KHÔNG ĐƯỢC TẮT" in off.stdout
            status = subprocess.run([*run, "status", "--state-dir", str(state)],
                                    capture_output=True, text=True, timeout=30)
            assert status.returncode == 0
            # The support number without --config: the agent says it.
            assert "Đang khoá" in status.stdout and "+84 205 3830 000" in status.stdout
            assert "Locked" not in status.stdout
            assert "Xã Thử" in status.stdout   # the room's name, from its info
        finally:
            proc.terminate()
            proc.wait(15)
            assert proc.stderr is not None
            proc.stderr.close()
