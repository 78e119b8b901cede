"""A busy queue never holds a deadline back: a window's lock engages on time even while local
status requests (or a flood of broker acknowledgements) keep the loop's queue full."""

from __future__ import annotations

import contextlib
import queue
import threading
from pathlib import Path
from typing import Any

from agent.core.events import ScheduleReceived, Window
from agent.hardware.pins import mock_factory
from agent.runtime import Agent, LocalCall, Stop
from agent.store import StateDir
from tests.agent.harness import offline_config

T0 = 1_800_000_000.0


def test_a_deadline_is_kept_while_the_queue_never_empties(tmp_path: Path) -> None:
    now = [T0]
    agent = Agent(offline_config(lead_min=1), mock_factory(), StateDir(tmp_path / "st"),
                  connect=False, clock=lambda: now[0], clock_synced=lambda: True)
    agent.start()
    agent.feed(ScheduleReceived((Window("t1", "test", T0 + 120, T0 + 600),), "v1"))
    assert agent.state.locked_by is None
    stop = threading.Event()
    flooding = threading.Event()

    def flood() -> None:
        def ignore(_: dict[str, Any]) -> None:
            flooding.set()
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                agent.queue.put(LocalCall("status", ignore), timeout=0.1)

    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    feeder = threading.Thread(target=flood, daemon=True)
    loop.start()
    feeder.start()
    try:
        assert flooding.wait(10)
        now[0] = T0 + 61          # start - lead has come; the queue is still full
        deadline = threading.Event()
        for _ in range(200):
            if agent.state.locked_by == "t1":
                break
            deadline.wait(0.05)
        assert agent.state.locked_by == "t1", "the lock waited for the queue to empty"
    finally:
        stop.set()
        feeder.join(5)
        with contextlib.suppress(queue.Full):
            agent.queue.put(Stop(), timeout=1)
        loop.join(10)
        agent.close()


def test_a_publish_that_failed_as_the_link_went_down_is_not_an_acknowledgement() -> None:
    # paho's is_published() raises for it; the loop used to fail on every PUBACK after that.
    import paho.mqtt.client as mqtt

    from agent.runtime import _published

    failed = mqtt.MQTTMessageInfo(7)
    failed.rc = mqtt.MQTT_ERR_NO_CONN
    assert _published(failed, set()) is False
    assert _published(failed, {7}) is True       # acknowledged by packet id all the same
    pending = mqtt.MQTTMessageInfo(8)
    assert _published(pending, set()) is False
