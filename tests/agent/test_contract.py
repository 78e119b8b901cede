"""The contract in code names every event kind and command the code can produce."""

from __future__ import annotations

import re
from pathlib import Path

from agent.contract.messages import SHELL_EVENTS
from agent.core.room import COMMAND_NAMES
from agent.link.payloads import ARGS

ROOT = Path(__file__).resolve().parents[2]


def test_every_core_event_kind_is_documented() -> None:
    doc = (ROOT / "docs" / "mqtt-api.md").read_text()
    kinds = set(re.findall(r'emit\(\s*"([a-z_]+)"', (ROOT / "agent" / "core" / "room.py")
                           .read_text()))
    assert len(kinds) > 15
    missing = sorted(k for k in kinds if f"`{k}`" not in doc)
    assert not missing, f"undocumented event kinds: {missing}"


def test_every_shell_event_has_a_contract_model() -> None:
    text = (ROOT / "agent" / "runtime.py").read_text()
    kinds = set(re.findall(r'emit\(\s*"([a-z_]+)"', text))
    assert kinds >= {"agent_started", "agent_stopping", "link_restored", "schedule_rejected",
                     "schedule_cache_failed"}
    assert kinds <= set(SHELL_EVENTS), sorted(kinds - set(SHELL_EVENTS))


def test_every_command_has_a_wire_schema() -> None:
    # answer_help's schema is on the wire before the core decides on it.
    assert set(COMMAND_NAMES) <= set(ARGS) <= {*COMMAND_NAMES, "answer_help"}
    doc = (ROOT / "docs" / "mqtt-api.md").read_text()
    assert all(f"`{name}`" in doc for name in COMMAND_NAMES)
