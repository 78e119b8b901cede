"""The contract's documents are made from its typed definitions and cannot drift; the
schemas they publish hold the messages the room really sends and refuse what it must not."""

from __future__ import annotations

import json

from agent.contract import generate
from agent.contract.events import EVENT_TYPES
from agent.contract.validate import problems
from agent.link.payloads import ARGS


def test_docs_and_schemas_are_generated_from_the_code() -> None:
    assert generate.drift() == [], "run: python -m agent.contract.generate"


def test_every_kind_command_and_message_has_its_schema_and_row() -> None:
    names = set(generate.schemas())
    assert {f"event.{k}.json" for k in EVENT_TYPES} <= names
    assert {f"command.{n}.json" for n in ARGS} <= names
    assert {"state.json", "info.json", "host.json", "reply.json", "schedule.json"} <= names
    doc = generate.DOC.read_text(encoding="utf-8")
    assert "<!-- generated:" not in doc
    assert all(f"| `{k}` |" in doc for k in EVENT_TYPES)
    assert all(f"| `{n}` |" in doc for n in ARGS)


def event(kind: str, data: dict, **env: object) -> bytes:
    msg = {"seq": 7, "id": "a" * 32, "ts": "2026-11-30T00:51:07.120Z", "kind": kind,
           "clock_trusted": True, "data": data, **env}
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()


def test_an_event_as_the_room_sends_it_keeps_to_its_schema() -> None:
    ok = event("shutdown_refused", {"source": "button", "kind": "test", "title": "Kiểm tra"},
               window_id="t-1", late={"first_due": "2026-11-30T00:51:07.120Z",
                                      "sent": "2026-11-30T01:02:00.000Z"})
    assert problems("events", ok) == []


def test_the_schemas_refuse_what_the_contract_does_not_say() -> None:
    # A field the contract does not name, a wrong type, an unknown kind, a missing field.
    assert problems("events", event("shutdown_refused", {"source": "button", "kind": "test",
                                                         "title": "", "why": "x"}))
    assert problems("events", event("power_step", {"device": "codec", "on": "yes",
                                                   "outcome": "done", "elapsed_s": 1,
                                                   "reason": ""}))
    assert problems("events", event("room_exploded", {}))
    assert problems("events", event("help_requested", {}))
    assert problems("events", b"{not json")
    assert problems("availability", b"maybe")
    assert problems("availability", b"online") == []
    assert problems("schedule", b"") == []           # a cleared retained schedule
    assert problems("weather", b"{}")
