"""Every core test: each ``Emit`` a step produces carries a typed event of the contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.contract.events import CORE_EVENTS
from agent.core import room
from agent.core.actions import Emit


@pytest.fixture(autouse=True)
def every_emit_is_a_typed_core_event(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = room.step
    emitted: list[Emit] = []

    def recording(*args: Any, **kw: Any) -> Any:
        out = real(*args, **kw)
        emitted.extend(a for a in out.actions if isinstance(a, Emit))
        return out

    monkeypatch.setattr(room, "step", recording)
    yield
    wrong = [e for e in emitted if not isinstance(e.event, CORE_EVENTS)]
    assert not wrong, f"not typed core events: {wrong[:3]}"
