"""The contract in code names every event kind and command the code can produce."""

from __future__ import annotations

import re
from pathlib import Path

from agent.contract import events as ev
from agent.contract.events import CORE_EVENTS, SHELL_EVENTS
from agent.core.room import COMMAND_NAMES
from agent.link.payloads import ARGS

ROOT = Path(__file__).resolve().parents[2]


def test_every_event_kind_is_documented() -> None:
    doc = (ROOT / "docs" / "mqtt-api.md").read_text()
    kinds = {t.KIND for t in CORE_EVENTS}  # type: ignore[attr-defined]
    assert len(kinds) > 15
    missing = sorted(k for k in kinds if f"`{k}`" not in doc)
    assert not missing, f"undocumented event kinds: {missing}"


def test_the_shell_makes_only_shell_events_of_the_contract() -> None:
    text = (ROOT / "agent" / "runtime.py").read_text()
    made = {getattr(ev, name) for name in re.findall(r"\bev\.([A-Z][A-Za-z]+)\(", text)}
    assert {t.KIND for t in made} >= {  # type: ignore[attr-defined]
        "agent_started", "agent_stopping", "link_restored", "schedule_rejected",
        "schedule_cache_failed", "relay_failed", "config_reloaded", "config_reload_refused"}
    assert made <= set(SHELL_EVENTS)
    # Only typed events: no kind spelt as a string on the way to the outbox.
    assert not re.findall(r'emit\(\s*"', text)


def test_every_command_is_documented_and_has_a_schema() -> None:
    doc = (ROOT / "docs" / "mqtt-api.md").read_text()
    assert set(ARGS) == set(COMMAND_NAMES)   # every command on the wire has a core handler
    assert all(f"`{name}`" in doc for name in COMMAND_NAMES)


def test_a_2x_reader_reads_every_minor_version_and_no_other_major() -> None:
    """The ``api`` field: the room sends the version it speaks (the minor rises with each
    addition); the schema a 2.x reader holds takes any 2.x and refuses another major."""
    import json

    from agent.contract.validate import problems
    from agent.link.topics import API_VERSION

    assert API_VERSION == "2.1"
    doc = json.loads((Path(__file__).parents[2] / "docs" / "mqtt-api.md.in").read_text()
                     .split("## state", 1)[1].split("```json", 1)[1].split("```", 1)[0])
    topic = "state"
    for api in ("2.0", "2.1", "2.17"):
        assert problems(topic, json.dumps({**doc, "api": api}).encode()) == [], api
    for api in ("3.0", "1.0", "2", "2.x"):
        assert problems(topic, json.dumps({**doc, "api": api}).encode()), api
