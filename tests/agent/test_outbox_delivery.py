"""Nothing recorded is lost: events made while the broker is down survive a kill -9 of the
agent and reach the district once, in order, when both come back."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from agent.control import request
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import site_yaml, start_agent, status_when_up, watcher


def test_events_survive_broker_and_agent_kill(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = short_tmp / "site.yaml"
    cfg.write_text(site_yaml(broker))
    state = short_tmp / "state"
    sock = StateDir(state).socket_path
    with watcher(broker) as w:
        agent = start_agent(cfg, broker, state)
        w.availability("online", timeout=20)
        assert request(sock, "off")["ok"] is True
        w.event("power_sequence_finished", on=False)
        delivered = max(e["seq"] for e in w.events())
    broker.kill()
    # The district is unreachable: the operator switches the room on and off again.
    for op in ("on", "off", "on"):
        assert request(sock, op)["ok"] is True
    made = status_when_up(state, agent)
    assert made["link"]["since"] is None
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait(10)
    broker.start()
    with watcher(broker) as w:
        agent = start_agent(cfg, broker, state)
        try:
            w.availability("online", timeout=20)
            def replayed(evs: list[dict[str, Any]]) -> bool:
                asked = [e["seq"] for e in evs if e["kind"] == "power_requested"]
                # The restarted agent's own start comes after everything it replays.
                return len(asked) >= 3 and any(
                    e["kind"] == "agent_started" and e["seq"] > max(asked) for e in evs)

            events = w.until(replayed, timeout=20)
            requests = [e for e in events if e["kind"] == "power_requested"]
            assert [e["data"]["on"] for e in requests] == [True, False, True]
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(seqs), "events out of order"
            assert len(seqs) == len(set(seqs)), "an event arrived twice"
            # Every number after the last one delivered before the outage is there, once.
            fresh = [s for s in seqs if s > delivered]
            assert fresh == list(range(delivered + 1, delivered + 1 + len(fresh)))
            assert len(fresh) >= 9   # 3 requests, each with start, steps and finish
        finally:
            agent.terminate()
            agent.wait(15)
