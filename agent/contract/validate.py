"""Check a message on a room topic against the contract's JSON Schemas.

Used by the contract tests: every payload the agent publishes in the integration tests goes
through :func:`problems`. The check is strict — a field the contract does not name is a problem
(:func:`strict` closes every object), so the code cannot add to the wire without the contract
saying so; readers of the contract are still told to ignore fields they do not know.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from agent.contract.generate import schemas

ROOM_TOPICS = ("availability", "info", "state", "host", "events", "replies", "commands",
               "schedule")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``additionalProperties: false`` on every object that lists properties."""
    out = copy.deepcopy(schema)
    stack: list[Any] = [out]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out


@cache
def _validator(name: str) -> Draft202012Validator | None:
    sch = schemas().get(name)
    return None if sch is None else Draft202012Validator(strict(sch))


def _schema_name(topic: str, doc: Any) -> str:
    if topic == "events":
        return f"event.{doc.get('kind')}.json" if isinstance(doc, dict) else "event.?.json"
    if topic == "commands":
        return f"command.{doc.get('name')}.json" if isinstance(doc, dict) else "command.?.json"
    if topic == "replies":
        return "reply.json"
    return f"{topic}.json"


def problems(topic: str, payload: bytes) -> list[str]:
    """What is wrong with ``payload`` on the room topic ``topic`` (the last part of the topic
    name, e.g. ``state``); empty when it keeps to the contract."""
    if topic not in ROOM_TOPICS:
        return [f"{topic}: not a topic of the contract"]
    if topic == "availability":
        return [] if payload in (b"online", b"offline") else [
            f"availability: {payload[:40]!r} is neither online nor offline"]
    if topic == "schedule" and payload == b"":
        return []  # a cleared retained message
    try:
        doc = json.loads(payload)
    except ValueError as e:
        return [f"{topic}: not JSON ({e})"]
    name = _schema_name(topic, doc)
    v = _validator(name)
    if v is None:
        return [f"{topic}: no schema {name} (an undocumented kind or name)"]
    return [f"{topic} ({name}) {'.'.join(str(p) for p in err.absolute_path) or '(payload)'}: "
            f"{err.message}" for err in v.iter_errors(doc)]
