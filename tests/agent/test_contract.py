"""The MQTT contract document names every event kind and command the code can produce."""

from __future__ import annotations

import re
from pathlib import Path

from agent.contract.events import CORE_EVENTS
from agent.core.room import COMMAND_NAMES
from agent.link.payloads import ARGS

ROOT = Path(__file__).resolve().parents[2]


def test_every_event_kind_is_documented() -> None:
    doc = (ROOT / "docs" / "mqtt-api.md").read_text()
    kinds = {t.KIND for t in CORE_EVENTS}  # type: ignore[attr-defined]
    kinds |= set(re.findall(r'emit\(\s*"([a-z_]+)"', (ROOT / "agent" / "runtime.py").read_text()))
    assert len(kinds) > 15
    missing = sorted(k for k in kinds if f"`{k}`" not in doc)
    assert not missing, f"undocumented event kinds: {missing}"


def test_every_command_is_documented_and_has_a_schema() -> None:
    doc = (ROOT / "docs" / "mqtt-api.md").read_text()
    assert set(ARGS) <= set(COMMAND_NAMES)   # every command on the wire has a core handler
    assert all(f"`{name}`" in doc for name in COMMAND_NAMES)
