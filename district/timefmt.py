"""Times: epoch seconds inside, ISO 8601 on the wire, the configured zone for people."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from agent.clock import iso_ms

__all__ = ["iso_local", "iso_ms", "local", "parse_time", "show"]


def parse_time(text: str, zone: ZoneInfo) -> float:
    """An ISO 8601 time as epoch seconds; a time without an offset is in ``zone``.

    Raises ``ValueError`` naming the text when it is not a time.
    """
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-29T09:00)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=zone)
    return t.timestamp()


def wire_time(value: object) -> float | None:
    """A time stamp from a room's payload, or None when it is missing or not a time."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.timestamp() if t.tzinfo is not None else t.replace(tzinfo=UTC).timestamp()


def local(ts: float, zone: ZoneInfo) -> datetime:
    """``ts`` as an aware datetime in ``zone``."""
    return datetime.fromtimestamp(ts, zone)


def iso_local(ts: float | None, zone: ZoneInfo) -> str | None:
    """``ts`` as ISO 8601 with ``zone``'s offset, to the second (reports, CSV, JSON)."""
    if ts is None:
        return None
    return local(ts, zone).isoformat(timespec="seconds")


def show(ts: float | None, zone: ZoneInfo, with_date: bool = True) -> str:
    """``ts`` for people: ``29/11/2026 09:00:05`` (day first, as in Vietnam) or ``—``."""
    if ts is None:
        return "—"
    return local(ts, zone).strftime("%d/%m/%Y %H:%M:%S" if with_date else "%H:%M:%S")
