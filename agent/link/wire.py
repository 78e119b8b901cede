"""How a room's messages are written on the wire: compact UTF-8 JSON (contract 2.0)."""

from __future__ import annotations

import json
from typing import Any

from agent.clock import iso_ms


def dumps(obj: Any) -> bytes:
    """Compact JSON (no spaces), UTF-8, non-ASCII kept as is; NaN is refused."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def reply_payload(command_id: str | None, status: str, reason: str, data: dict[str, Any] | None,
                  site: str, now: float) -> bytes:
    """The bytes of one reply (``agent.contract.messages.Reply``). A repeated command id is
    answered with these same bytes, so they are built once and kept."""
    return dumps({"command_id": command_id, "status": status, "reason": reason,
                  "data": data or {}, "site": site, "ts": iso_ms(now)})
