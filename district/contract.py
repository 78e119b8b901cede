"""The console's side of MQTT contract 2.0: topics, what rooms send, what the console sends.

Rooms' payloads are read leniently (a field the console does not know is kept, not refused)
but an event without a usable ``seq`` or ``kind`` cannot be de-duplicated and is kept aside as
rejected. What the console sends is compact JSON (``separators=(",", ":")``,
``ensure_ascii=False``), UTF-8, times ISO 8601 UTC with milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from district.model import EventRow, Reply, Window
from district.timefmt import iso_ms, wire_time

API = "2.1"
ROOM_TOPICS = ("availability", "state", "info", "host", "events", "replies")
TO_ROOM = ("commands", "schedule")


@dataclass(frozen=True)
class Topics:
    """Topic names under ``<prefix>/rooms/<site>/…``."""

    prefix: str = "diemcau/v2"

    def room(self, site: str, kind: str) -> str:
        return f"{self.prefix}/rooms/{site}/{kind}"

    def subscriptions(self) -> list[str]:
        """Every topic the recorder subscribes to (one wildcard per kind)."""
        return [f"{self.prefix}/rooms/+/{k}" for k in ROOM_TOPICS]

    def parse(self, topic: str) -> tuple[str, str] | None:
        """``(site, kind)`` for a room topic the recorder reads, else None."""
        head = f"{self.prefix}/rooms/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 2 or parts[1] not in ROOM_TOPICS or not parts[0]:
            return None
        return parts[0], parts[1]


class BadPayload(ValueError):
    """A room's payload the console cannot use; the message says why."""


def compact(obj: Any) -> bytes:
    """The contract's JSON encoding."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest(payload: bytes) -> str:
    """The schedule digest: the first 16 hex digits of the SHA-256 of the payload bytes."""
    return hashlib.sha256(payload).hexdigest()[:16]


def new_command_id() -> str:
    """A fresh command id (never reused: a repeated id would get the first reply again)."""
    return f"c-{uuid.uuid4().hex[:20]}"


def decode(raw: bytes) -> Any:
    """JSON from a payload, or :class:`BadPayload`."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadPayload("not UTF-8") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise BadPayload(f"not JSON: {str(e)[:120]}") from None


def parse_event(site: str, raw: bytes, received_at: float) -> EventRow:
    """An event envelope as an :class:`EventRow`, or :class:`BadPayload`."""
    d = decode(raw)
    if not isinstance(d, dict):
        raise BadPayload("an event must be a JSON object")
    seq, kind = d.get("seq"), d.get("kind")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
        raise BadPayload("seq: missing or not an integer from 0 to 2^63-1")
    if not isinstance(kind, str) or not kind:
        raise BadPayload("kind: missing")
    data = d.get("data") if isinstance(d.get("data"), dict) else {}
    late = d.get("late") if isinstance(d.get("late"), dict) else None
    wid = d.get("window_id")
    trusted = d.get("clock_trusted")
    return EventRow(site=site, seq=seq, kind=kind, ts=wire_time(d.get("ts")),
                    received_at=received_at,
                    window_id=wid if isinstance(wid, str) and wid else None,
                    clock_trusted=trusted if isinstance(trusted, bool) else None,
                    late=late is not None,
                    first_due=wire_time(late.get("first_due")) if late else None,
                    data=data, event_id=d.get("id") if isinstance(d.get("id"), str) else None)


def parse_reply(site: str, raw: bytes, received_at: float) -> Reply:
    """A reply as a :class:`Reply`, or :class:`BadPayload`."""
    d = decode(raw)
    if not isinstance(d, dict):
        raise BadPayload("a reply must be a JSON object")
    cid, status = d.get("command_id"), d.get("status")
    if not isinstance(cid, str) or not cid:
        raise BadPayload("command_id: missing")
    if status not in ("accepted", "refused", "invalid"):
        raise BadPayload("status: must be accepted, refused or invalid")
    data = d.get("data") if isinstance(d.get("data"), dict) else {}
    reason = d.get("reason") if isinstance(d.get("reason"), str) else ""
    return Reply(cid, site, status, reason, data, received_at)


def parse_object(raw: bytes) -> dict[str, Any]:
    """A ``state``/``info``/``host`` payload, or :class:`BadPayload`."""
    d = decode(raw)
    if not isinstance(d, dict):
        raise BadPayload("must be a JSON object")
    return d


def schedule_payload(site: str, version: str, windows: Iterable[Window], now: float) -> bytes:
    """A room's whole schedule, retained on ``…/schedule``; completed windows carry
    ``completed: {at, by}``."""
    out = []
    for w in sorted(windows, key=lambda w: (w.start, w.id)):
        item: dict[str, Any] = {"id": w.id, "kind": w.kind, "title": w.title,
                                "start": iso_ms(w.start), "end": iso_ms(w.end)}
        if w.completed_at is not None:
            item["completed"] = {"at": iso_ms(w.completed_at), "by": w.completed_by or ""}
        out.append(item)
    return compact({"version": version, "site": site, "ts": iso_ms(now), "windows": out})


def command_payload(command_id: str, name: str, args: dict[str, Any], sender: str, site: str,
                    now: float) -> bytes:
    """A command envelope ``{id, name, args, sender, site, ts}``."""
    return compact({"id": command_id, "name": name, "args": args, "sender": sender,
                    "site": site, "ts": iso_ms(now)})
