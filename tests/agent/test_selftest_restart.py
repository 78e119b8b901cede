"""A self-test cut short by the agent's death (``kill -9``), against a real Mosquitto and real
agent processes: the agent that starts again on the same state directory records
``selftest_finished`` with ``interrupted_by: restart`` (the test was saved with the room's
state), reports the device it was testing, and switches that device back on."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from agent.control import request
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import site_yaml, start_agent, status_when_up, watcher


def test_a_selftest_killed_halfway_is_finished_as_interrupted_after_the_restart(
        broker: LocalBroker, short_tmp: Path) -> None:
    cfg = short_tmp / "site.yaml"
    cfg.write_text(site_yaml(broker))
    state = short_tmp / "state"
    with watcher(broker) as w:
        first = start_agent(cfg, broker, state)
        try:
            w.availability("online", timeout=20)
            status_when_up(state, first)
            answered: list[Any] = []
            asker = threading.Thread(target=lambda: answered.append(_ask(state)), daemon=True)
            asker.start()
            w.event("selftest_started", source="cli", timeout=20)
            # The codec is without power for its pause: the agent dies there.
            w.event("power_step", device="codec", on=False, reason="selftest:codec",
                    timeout=20)
            first.send_signal(signal.SIGKILL)
            assert first.wait(20) == -signal.SIGKILL
            asker.join(20)
            assert answered and answered[0] is None, "the operator's CLI got no result"
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert not [e for e in w.events() if e["kind"] == "selftest_finished"]
        second = start_agent(cfg, broker, state)
        try:
            finished = w.event("selftest_finished", timeout=30)["data"]
            assert finished["interrupted_by"] == "restart" and finished["ok"] is False
            assert finished["failed"] == ["codec", "camera", "amplifier"]
            assert finished["elapsed_s"] >= 0
            device = w.event("selftest_device", device="codec", timeout=5)["data"]
            assert device["ok"] is False and device["on"] == "not_done"
            # The codec back on, by the test's own reason: the room is left on.
            w.event("power_step", device="codec", on=True, reason="selftest:codec", timeout=20)
            devices = status_when_up(state, second)["devices"]
            assert {n: d["power"] for n, d in devices.items()} == {
                "codec": "on", "camera": "on", "amplifier": "on"}
            assert len([e for e in w.events() if e["kind"] == "selftest_finished"]) == 1
        finally:
            second.terminate()
            second.wait(15)


def _ask(state: Path) -> dict[str, Any] | None:
    """``diemcau-agent selftest``'s request: its answer, or None when the agent died first."""
    try:
        return request(StateDir(state).socket_path, "selftest", timeout=60)
    except (OSError, ValueError):
        return None
