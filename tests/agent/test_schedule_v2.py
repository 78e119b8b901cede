"""Schedules under contract 2.0, through the agent's real path (``Agent.handle(Incoming)``):
mixed time forms are a problem with a field, a failing cache does not stop a valid schedule,
digests and completions are read, and a rejected schedule is reported once per digest."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.hardware.pins import mock_factory
from agent.link.mqtt import Incoming
from agent.link.payloads import parse_schedule
from agent.runtime import Agent
from agent.store import StateDir
from tests.agent.harness import SITE, offline_config


def room(state: Path) -> Agent:
    agent = Agent(offline_config(), mock_factory(), StateDir(state), connect=False)
    agent.start()
    return agent


def kinds(agent: Agent, since: int) -> list[tuple[str, dict[str, Any]]]:
    return [(r.kind, r.data) for r in agent.outbox.pending() if r.seq >= since]


def window(wid: str, start: datetime, minutes: float = 30, **extra: Any) -> dict[str, Any]:
    return {"id": wid, "kind": "test", "title": "Kiểm tra", "start": start.isoformat(),
            "end": (start + timedelta(minutes=minutes)).isoformat(), **extra}


def payload(version: str, *windows: dict[str, Any]) -> bytes:
    return json.dumps({"version": version, "site": SITE, "windows": list(windows)}).encode()


SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)


def test_mixed_local_and_offset_times_are_a_problem_with_a_field(short_tmp: Path) -> None:
    agent = room(short_tmp / "st")
    try:
        mixed = window("t1", SOON)
        mixed["start"] = SOON.replace(tzinfo=None).isoformat()   # local time, no offset
        body = payload("v-mix", mixed)
        mark = agent.outbox.next_seq()
        agent.handle(Incoming("schedule", body, retained=True))   # no TypeError escapes
        ((kind, data),) = kinds(agent, mark)
        assert kind == "schedule_rejected"
        assert data["version"] == "v-mix"
        assert data["digest"] == hashlib.sha256(body).hexdigest()[:16]
        assert len(data["problems"]) == 1 and data["problems"][0].startswith("windows.0.end: ")
        assert agent.state.schedule == ()
        assert agent.state_message()["schedule"]["rejected"] == {"version": "v-mix",
                                                                 "digest": data["digest"]}
    finally:
        agent.close()


def test_a_rejected_schedule_is_reported_once_per_digest_also_after_restart(
        short_tmp: Path) -> None:
    bad = payload("v-bad", window("t1", SOON, minutes=-5))   # ends before it starts
    agent = room(short_tmp / "st")
    try:
        mark = agent.outbox.next_seq()
        agent.handle(Incoming("schedule", bad, retained=True))
        agent.handle(Incoming("schedule", bad, retained=True))   # the same copy again
        assert [k for k, _ in kinds(agent, mark)] == ["schedule_rejected"]
    finally:
        agent.close()
    agent = room(short_tmp / "st")
    try:
        assert agent.state_message()["schedule"]["rejected"]["version"] == "v-bad"
        mark = agent.outbox.next_seq()
        agent.handle(Incoming("schedule", bad, retained=True))   # e.g. a new session
        assert [k for k, _ in kinds(agent, mark)] == []
        other = payload("v-bad2", window("t1", SOON, minutes=-5))
        agent.handle(Incoming("schedule", other, retained=True))
        assert [k for k, _ in kinds(agent, mark)] == ["schedule_rejected"]
        # A valid schedule is applied and the state no longer shows a rejection.
        good = payload("v-good", window("t1", SOON))
        agent.handle(Incoming("schedule", good, retained=True))
        sched = agent.state_message()["schedule"]
        assert sched == {"version": "v-good", "digest": hashlib.sha256(good).hexdigest()[:16],
                         "rejected": None}
    finally:
        agent.close()


def test_a_failing_cache_write_is_an_event_and_the_schedule_still_applies(
        short_tmp: Path) -> None:
    agent = room(short_tmp / "st")
    try:
        agent.store.schedule_file.mkdir()   # the cache cannot be replaced
        good = payload("v-1", window("t1", SOON))
        mark = agent.outbox.next_seq()
        agent.handle(Incoming("schedule", good, retained=True))
        events = kinds(agent, mark)
        assert events[0][0] == "schedule_cache_failed" and events[0][1]["error"]
        assert "schedule_applied" in [k for k, _ in events]
        assert agent.state.schedule_version == "v-1" and len(agent.state.schedule) == 1
    finally:
        agent.close()


def test_digest_and_completed_windows_are_read() -> None:
    done_at = SOON + timedelta(minutes=31)
    body = payload("v-c", window("t1", SOON, completed={"at": done_at.isoformat(),
                                                          "by": "console:hung"}),
                   window("t2", SOON + timedelta(hours=3)))
    sched = parse_schedule(body, SITE, "Asia/Ho_Chi_Minh")
    assert sched.digest == hashlib.sha256(body).hexdigest()[:16]
    assert sched.completed == (("t1", done_at.timestamp(), "console:hung"),)
    assert [w.id for w in sched.windows] == ["t1", "t2"]
