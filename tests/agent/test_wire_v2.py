"""Contract 2.0 on the wire, against a real Mosquitto: retained ``info`` only when changed,
``state`` only on change, ``host`` at connect and at once on a threshold crossing, the event
envelope (window, clock trust, late), how the agent says it started and stops, and a link
that comes back inside its session. Every message the watcher sees is also checked against
``agent.contract.messages`` (tests/agent/harness.py)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.cli import serve
from agent.config import Broker
from agent.hardware.pins import mock_factory
from agent.link.host import HostReporter
from agent.link.mqtt import Incoming
from agent.link.payloads import PayloadError, parse_command
from agent.runtime import Agent, LocalCall, Stop
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import (
    SITE,
    offline_config,
    running,
    schedule,
    site_config,
    site_yaml,
    start_agent,
    watcher,
)


@contextmanager
def serving(agent: Agent) -> Iterator[Agent]:
    """Run an agent built by the test (its loop and control socket) in a thread."""
    stop = threading.Event()
    loop = threading.Thread(target=serve, args=(agent, True, stop), daemon=True)
    loop.start()
    assert agent.started.wait(10)
    try:
        yield agent
    finally:
        stop.set()
        agent.queue.put(Stop())
        loop.join(15)
        assert not loop.is_alive()


def live(w: Any, topic: str) -> list[Any]:
    """Messages on ``topic`` published while the watcher listened (not retained copies)."""
    with w._cv:
        return [json.loads(p) for t, p, r in w.messages if t == topic and not r]


def wait_until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def heartbeat_now(agent: Agent) -> None:
    """Make the heartbeat due and wake the loop (as if its interval had passed)."""
    agent._last_heartbeat -= 10 * agent.cfg.timing.heartbeat_s
    agent.queue.put(LocalCall("status", lambda _: None))


def test_info_is_retained_and_published_only_when_it_changed(broker: LocalBroker,
                                                             short_tmp: Path) -> None:
    state = short_tmp / "state"
    with watcher(broker) as w:
        with running(site_config(broker), state):
            info = w.wait("info")
            assert info["site"] == SITE and info["name"] == "Xã Thử"
            assert info["devices"]["codec"] == {"role": "codec", "label": "codec",
                                                "driver": None}
            assert info["support"][0]["phone"] == "+84 205 3830 000"
        with running(site_config(broker), state):   # the same facts: not published again
            w.availability("online")
            w.command("sync-1", "request_state")
            assert len(live(w, "info")) == 1
        changed = site_config(broker).model_copy(
            update={"site": site_config(broker).site.model_copy(update={"name": "Xã Mới"})})
        with running(changed, state):
            assert w.wait("info", lambda i: i["name"] == "Xã Mới")["site"] == SITE
        assert len(live(w, "info")) == 2
    with watcher(broker) as late:   # the broker keeps it for whoever comes later
        assert late.wait("info")["name"] == "Xã Mới"


def test_state_goes_out_on_change_only_with_the_v2_shape(broker: LocalBroker,
                                                         short_tmp: Path) -> None:
    with watcher(broker) as w, running(site_config(broker), short_tmp / "state") as room:
        w.availability("online")
        first = w.wait("state")
        for gone in ("host", "name", "agent_version", "config_hash", "broker_connected",
                     "schedule_version"):
            assert gone not in first
        assert first["api"] == "2.1" and first["link"]["since"] is not None
        assert first["lock"] == {"locked": False}
        assert first["schedule"] == {"version": "", "digest": None, "rejected": None}
        # Each request_state publishes the state once, right after its reply. Between the
        # replies to sync-1 and sync-3 there are exactly those of sync-1 and sync-2: the
        # heartbeat between them, which used to publish the state again, sends nothing.
        w.command("sync-1", "request_state")
        heartbeat_now(room.agent)
        assert w.command("sync-2", "request_state")["status"] == "accepted"
        w.command("sync-3", "request_state")
        with w._cv:
            topics = [(t, json.loads(p).get("command_id")) for t, p, _ in w.messages
                      if t in ("state", "replies")]
        a, b = topics.index(("replies", "sync-1")), topics.index(("replies", "sync-3"))
        assert [t for t, _ in topics[a + 1:b]] == ["state", "replies", "state"]
        w.command("sync-4", "operator_check", timeout_s=60)   # a change: published
        st = w.wait("state", lambda s: s["operator"]["check"] is not None)
        assert st["last_seq"] >= max(e["seq"] for e in w.events())
        assert st["led"] == "check_requested"


def test_host_at_connect_and_at_once_when_a_threshold_is_crossed(broker: LocalBroker,
                                                                 short_tmp: Path) -> None:
    reading = {"cpu_temp_c": 50.0, "load": [0.1, 0.1, 0.1], "mem_used_pct": 20.0,
               "disk_used_pct": 30.0, "uptime_s": 100}
    agent = Agent(site_config(broker), mock_factory(), StateDir(short_tmp / "st"))
    agent._host = HostReporter(900, sample=lambda: dict(reading))
    with watcher(broker) as w, serving(agent):
        host = w.wait("host")
        assert host["alerts"] == [] and host["cpu_temp_c"] == 50.0
        reading["cpu_temp_c"] = 80.0
        heartbeat_now(agent)
        assert w.wait("host", lambda h: h["alerts"] == ["cpu_temp"])["cpu_temp_c"] == 80.0
        reading["cpu_temp_c"] = 74.0            # still hot (back only below 72)
        heartbeat_now(agent)
        reading["disk_used_pct"] = 95.0
        heartbeat_now(agent)
        h = w.wait("host", lambda h: "disk" in h["alerts"])
        assert h["alerts"] == ["cpu_temp", "disk"]
        mark = len(w.messages)
        reading.update(cpu_temp_c=60.0, disk_used_pct=30.0)
        heartbeat_now(agent)
        w.wait("host", lambda h: h["alerts"] == [], since=mark)
        assert [h["alerts"] for h in live(w, "host")] == [
            [], ["cpu_temp"], ["cpu_temp", "disk"], []]


def test_the_envelope_names_the_window_the_clock_trust_and_late_sends(
        broker: LocalBroker, short_tmp: Path) -> None:
    agent = Agent(site_config(broker), mock_factory(), StateDir(short_tmp / "st"),
                  clock_synced=lambda: True)
    with watcher(broker, persistent=True) as w, serving(agent):
        started = w.event("agent_started")
        assert "window_id" not in started and started["clock_trusted"] is True
        w.publish("schedule", schedule(10), retain=True)
        engaged = w.event("lock_engaged")
        assert engaged["window_id"] == "t1"
        assert "late" not in engaged
        assert w.command("c-check", "operator_check", timeout_s=60)["status"] == "accepted"
        asked = w.event("operator_check_requested")
        assert asked["window_id"] == "t1" and asked["clock_trusted"] is True
        broker.stop()
        wait_until(lambda: not agent.link.connected)
        done = threading.Event()
        agent.queue.put(LocalCall("off", lambda _: done.set()))   # refused: made while away
        assert done.wait(10)
        broker.start()
        refused = w.event("shutdown_refused", timeout=30)
        assert refused["window_id"] == "t1"
        late = refused["late"]
        assert late["first_due"] == refused["ts"] and late["sent"] >= refused["ts"]
        restored = w.event("link_restored", timeout=30)
        assert restored["data"]["reconnects"] == 1 and "late" not in restored


def test_link_restored_after_a_broker_restart_without_fetching_the_schedule_again(
        broker: LocalBroker, short_tmp: Path) -> None:
    agent = Agent(site_config(broker), mock_factory(), StateDir(short_tmp / "st"))
    incoming: Counter[str] = Counter()
    real = agent.handle

    def handle(msg: Any) -> None:
        if isinstance(msg, Incoming):
            incoming[msg.kind] += 1
        real(msg)

    agent.handle = handle  # type: ignore[method-assign]
    with watcher(broker, persistent=True) as w, serving(agent):
        w.publish("schedule", schedule(120), retain=True)
        w.event("schedule_applied")
        # The schedule's PUBACK goes out after its decision; the reply to a later command
        # comes after it on the same connection: then the broker has it.
        w.command("sync-0", "request_state")
        assert incoming["schedule"] == 1
        broker.stop()   # a clean stop keeps the sessions and retained messages
        wait_until(lambda: not agent.link.connected)
        broker.start()
        data = w.event("link_restored", timeout=30)["data"]
        assert data["reconnects"] == 1 and data["down_s"] >= 0
        w.command("sync", "request_state")
        st = w.wait("state", lambda s: s["link"]["reconnects"] == 1)
        assert st["link"]["since"] > data["down_since"]
        # retain_handling=1 in a resumed session: the unchanged schedule is not sent again.
        assert incoming["schedule"] == 1
        assert agent.link.session_present


def test_agent_started_says_how_it_stopped_before(short_tmp: Path) -> None:
    state = StateDir(short_tmp / "st")

    def start() -> tuple[Agent, dict[str, Any]]:
        a = Agent(offline_config(), mock_factory(), state, connect=False)
        mark = a.outbox.next_seq()
        a.start()
        (rec,) = [r for r in a.outbox.pending() if r.seq >= mark and r.kind == "agent_started"]
        return a, rec.data

    a, first = start()
    # The very first start: nothing stopped badly before it, and no time is known.
    assert first["previous_stop"] == "clean" and "last_alive_at" not in first
    a.close()
    b, second = start()
    assert second["previous_stop"] == "clean" and second["last_alive_at"]
    # b is never closed: as if killed.
    b.outbox.close()
    b.board.close()
    c, third = start()
    assert third["previous_stop"] == "crash"
    c.outbox.close()
    c.board.close()
    alive = json.loads(state.alive_file.read_text())
    state.alive_file.write_text(json.dumps({**alive, "boot_id": "another-boot"}))
    d, fourth = start()
    try:
        assert fourth["previous_stop"] == "power_loss_or_reboot"
    finally:
        d.close()


def test_agent_stopping_comes_before_offline(broker: LocalBroker, short_tmp: Path) -> None:
    cfg = short_tmp / "site.yaml"
    cfg.write_text(site_yaml(broker))
    with watcher(broker) as w:
        proc = start_agent(cfg, broker, short_tmp / "state")
        w.availability("online", timeout=20)
        w.wait("state")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        w.availability("offline")
        stopping = w.event("agent_stopping")
        assert stopping["data"] == {"reason": "signal", "system_shutdown": False}
        with w._cv:
            order = [(t, p) for t, p, _ in w.messages if t in ("events", "availability")]
        at = next(i for i, (t, p) in enumerate(order) if t == "events"
                  and json.loads(p)["kind"] == "agent_stopping")
        assert ("availability", b"offline") in order[at:]


def test_keepalive_default_and_answer_help_schema() -> None:
    assert Broker().keepalive_s == 240
    cmd = parse_command(json.dumps({"id": "h1", "name": "answer_help",
                                    "args": {"note": "Đang gọi lại"}}).encode(), SITE)
    assert cmd.name == "answer_help" and cmd.args == {"note": "Đang gọi lại"}
    assert parse_command(b'{"id": "h2", "name": "answer_help"}', SITE).args == {"note": ""}
    for bad in ({"note": "x" * 201}, {"nte": "typo"}, {"note": 5}):
        try:
            parse_command(json.dumps({"id": "h3", "name": "answer_help",
                                      "args": bad}).encode(), SITE)
        except PayloadError as e:
            assert e.problems[0].startswith("args.")
        else:
            raise AssertionError(f"answer_help with {bad} accepted")
