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
