"""Commands exactly once (contract 2.0), against a real Mosquitto and real processes:

* a command is acknowledged to the broker only after its decision is on disk: an agent killed
  (``kill -9``) between receiving it and handling it handles it once after its restart;
* a command id seen before gets its first reply again, word for word, and does nothing — also
  after a restart (the ids and replies are on disk, not in memory);
* a command sent while the room is offline waits in its persistent session and is handled when
  it comes back.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from agent.control import request
from agent.hardware.pins import mock_factory
from agent.link.mqtt import Incoming
from agent.outbox import COMMAND_TTL_S, Outbox
from agent.runtime import DIE_BEFORE_HANDLING, Agent
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import running, site_config, site_yaml, start_agent, watcher

CAMERA_PIN = 20   # active-low coil on the NC contact: camera off = pin low


def power(cid: str, on: bool, device: str = "camera") -> dict[str, Any]:
    return {"id": cid, "name": "power", "args": {"on": on, "device": device}, "sender": "test"}


def started_by(events: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "power_sequence_started"
            and e["data"]["reason"] == f"district:{cid}"]


def test_killed_between_receipt_and_handling_handled_once_after_restart(
        broker: LocalBroker, short_tmp: Path) -> None:
    cfg = short_tmp / "site.yaml"
    cfg.write_text(site_yaml(broker))
    state = short_tmp / "state"
    with watcher(broker) as w:
        first = start_agent(cfg, broker, state, env={DIE_BEFORE_HANDLING: "c-kill"})
        try:
            w.availability("online", timeout=20)
            w.wait("state")
            w.publish("commands", power("c-kill", False))
            # The agent took the command from paho and died before deciding anything.
            assert first.wait(20) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert w.raw_replies("c-kill") == []
        assert started_by(w.events(), "c-kill") == []
        second = start_agent(cfg, broker, state)
        try:
            # Never acknowledged: the broker sends it again into the resumed session.
            reply = w.wait("replies", lambda r: r["command_id"] == "c-kill", timeout=30)
            assert reply["status"] == "accepted"
            w.event("power_sequence_finished", reason="district:c-kill", timeout=20)
            assert request(StateDir(state).socket_path, "status")["state"]["devices"][
                "camera"]["power"] == "off"
            # The centre did not see the reply and sends the command again: the first reply
            # again, byte for byte, and nothing done (even though it now asks for "on").
            mark = len(w.messages)
            w.publish("commands", power("c-kill", True))
            w.wait("replies", lambda r: r["command_id"] == "c-kill", since=mark, timeout=20)
            w.command("probe-1", "request_state")
            first_reply, *again = w.raw_replies("c-kill")
            assert again and all(r == first_reply for r in again)
            assert len(started_by(w.events(), "c-kill")) == 1
            assert request(StateDir(state).socket_path, "status")["state"]["devices"][
                "camera"]["power"] == "off"
        finally:
            second.terminate()
            second.wait(15)


def test_a_resend_after_a_restart_gets_the_first_reply_and_changes_nothing(
        broker: LocalBroker, short_tmp: Path) -> None:
    cfg = site_config(broker)
    state = short_tmp / "state"
    with watcher(broker) as w:
        with running(cfg, state) as room:
            w.availability("online")
            first = w.command("c-once", "power", on=False, device="camera")
            assert first["status"] == "accepted"
            w.event("power_sequence_finished", reason="district:c-once")
            assert room.factory.pin(CAMERA_PIN).state is False
        with running(cfg, state, factory=room.factory) as room:
            again = w.command("c-once", "power", on=True, device="camera")
            assert again == first
            w.command("probe-2", "request_state")
            assert room.factory.pin(CAMERA_PIN).state is False
            assert len(started_by(w.events(), "c-once")) == 1
            (a, b) = w.raw_replies("c-once")
            assert a == b


def test_a_command_sent_while_the_room_is_offline_is_handled_when_it_comes_back(
        broker: LocalBroker, short_tmp: Path) -> None:
    cfg = site_config(broker)
    state = short_tmp / "state"
    with watcher(broker) as w:
        with running(cfg, state) as room:
            w.availability("online")
            w.wait("state")
        w.availability("offline")
        w.publish("commands", power("c-away", False))   # nobody there to take it now
        with running(cfg, state, factory=room.factory) as room:
            reply = w.wait("replies", lambda r: r["command_id"] == "c-away", timeout=20)
            assert reply["status"] == "accepted"
            w.event("power_sequence_finished", reason="district:c-away")
            assert room.factory.pin(CAMERA_PIN).state is False


def test_repeats_of_an_invalid_command_get_its_first_reply(broker: LocalBroker,
                                                            short_tmp: Path) -> None:
    agent = Agent(site_config(broker), mock_factory(), StateDir(short_tmp / "st"),
                  connect=False)
    replies: list[bytes] = []
    agent.link.publish_reply = (  # type: ignore[method-assign]
        lambda payload, correlation=None: replies.append(payload))
    agent.start()
    try:
        bad = json.dumps({"id": "c-bad", "name": "power", "args": {"on": "maybe"}}).encode()
        agent.handle(Incoming("command", bad))
        before = agent.outbox.next_seq()
        # The sender fixes the command but keeps the id: still the first (invalid) reply.
        agent.handle(Incoming("command", json.dumps(power("c-bad", False)).encode()))
        assert len(replies) == 2 and replies[0] == replies[1]
        assert json.loads(replies[0])["status"] == "invalid"
        assert agent.outbox.next_seq() == before   # nothing decided, nothing recorded
        assert agent.state.relays["camera"] is True
        # A new id is a new command.
        agent.handle(Incoming("command", json.dumps(power("c-bad-2", False)).encode()))
        assert json.loads(replies[2])["status"] == "accepted"
    finally:
        agent.close()


def test_seen_ids_are_kept_seven_days(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    box = Outbox(tmp_path / "o.sqlite", clock=lambda: now[0])
    try:
        box.record_command("old", b"first")
        assert box.command_reply("old") == b"first"
        now[0] += COMMAND_TTL_S - 60
        box.record_command("newer", b"second")
        assert box.command_reply("old") == b"first"
        now[0] += 120
        box.record_command("newest", b"third")
        assert box.command_reply("old") is None   # past 7 days: forgotten
        assert box.command_reply("newer") == b"second"
    finally:
        box.close()
    again = Outbox(tmp_path / "o.sqlite", clock=lambda: now[0])
    try:
        assert again.command_reply("newest") == b"third"   # on disk
    finally:
        again.close()

