"""Restart safety with real processes: ``kill -9`` of the agent during a window, and a
simulated power cut of the Pi. The simulated pins keep their levels across processes in
``pins.log`` (as a Pi's GPIO lines do), so their history shows every transition."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from agent.control import request
from agent.hardware.pins import read_pin_history
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import schedule, site_yaml, start_agent, status_when_up, watcher

RELAYS = {"GPIO26", "GPIO20", "GPIO21"}


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def relay_changes(state: Path, pid: int) -> list[tuple[str, bool]]:
    return [(name, level) for _, name, level, p in read_pin_history(state / "pins.log")
            if p == pid and name in RELAYS]


def test_sigkill_during_window_no_relay_transition(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = short_tmp / "site.yaml"
    cfg.write_text(site_yaml(broker))
    state = short_tmp / "state"
    with watcher(broker) as w:
        first = start_agent(cfg, broker, state)
        try:
            w.availability("online", timeout=20)
            # Switch the room off, then let a window lock it and power it up.
            assert request(StateDir(state).socket_path, "off")["ok"] is True
            w.wait("state", lambda s: s["power"] == "off")
            w.publish("schedule", schedule(5), retain=True)
            w.event("lock_engaged", window_id="t1")
            w.wait("state", lambda s: s["power"] == "on")
            last_seq = max(e["seq"] for e in w.events())
        finally:
            kill(first)
        w.availability("offline")
        second = start_agent(cfg, broker, state)
        try:
            w.wait("availability", lambda v: v == b"online", raw=True,
                   since=len(w.messages) - 1, timeout=20)
            status = request(StateDir(state).socket_path, "status")["state"]
            assert status["lock"]["locked"] is True and status["power"] == "on"
            # The restarted room refuses a local switch-off as before...
            assert request(StateDir(state).socket_path, "off")["ok"] is False
            refused = w.event("shutdown_refused", source="cli")
            # ...numbers its events after the last one...
            assert refused["seq"] > last_seq
            # ...and never moved a relay.
            assert relay_changes(state, second.pid) == []
            assert relay_changes(state, first.pid) != []   # the history is really recorded
        finally:
            second.terminate()
            second.wait(15)


def test_power_cut_of_the_pi_restores_lock_without_transition(broker: LocalBroker,
                                                              short_tmp: Path) -> None:
    cfg = short_tmp / "site.yaml"
    cfg.write_text(site_yaml(broker))
    state = short_tmp / "state"
    with watcher(broker) as w:
        first = start_agent(cfg, broker, state)
        try:
            w.availability("online", timeout=20)
            w.publish("schedule", schedule(5), retain=True)
            w.event("lock_engaged", window_id="t1")
        finally:
            kill(first)
        # Power cut: every GPIO line forgets its level; at boot config.txt drives the relay
        # pins high (coils released), which powers NC-wired devices: what the room had.
        (state / "pins.log").write_text("".join(f"0 {p} 1 0\n" for p in sorted(RELAYS)))
        broker.stop()   # and the district link is down when the Pi comes back
        second = start_agent(cfg, broker, state)
        try:
            status = status_when_up(state, second)
            assert status["lock"]["locked"] is True and status["window"]["id"] == "t1"
            assert status["link"]["since"] is None
            assert relay_changes(state, second.pid) == []
        finally:
            second.terminate()
            try:
                second.wait(15)
            except subprocess.TimeoutExpired:
                second.kill()
