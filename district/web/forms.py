"""Reading the dashboard's forms: every problem is put next to its field, in the viewer's
language, and a form with a problem changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from district.config import Lang
from district.service import RESULTS, ServiceError
from district.timefmt import parse_time
from district.web.text import word

Errors = dict[str, list[str]]
WINDOW_FIELDS = ("kind", "title", "start", "end", "rooms", "duration_min")


def field_errors(e: ServiceError, lang: Lang, known: tuple[str, ...] = ()) -> Errors:
    """The service's ``field: message`` problems by field (``_`` for the others)."""
    out: Errors = {}
    for text in e.text(lang):
        name, sep, msg = text.partition(": ")
        if not sep or (known and name not in known):
            name, msg = "_", text
        out.setdefault(name, []).append(msg)
    return out


def _s(form: Any, key: str) -> str:
    v = form.get(key) if form is not None else None
    return v.strip() if isinstance(v, str) else ""


@dataclass
class WindowForm:
    """The schedule-a-window form as typed, and what it means."""

    values: dict[str, str]
    chosen: list[str]
    now: bool
    errors: Errors = field(default_factory=dict)
    start: float = 0.0
    end: float = 0.0
    duration_min: float = 0.0

    @property
    def rooms(self) -> str | list[str]:
        """The rooms as the service takes them (``all``, ``group:X`` or ids)."""
        mode = self.values["rooms_mode"]
        if mode == "group":
            return f"group:{self.values['group']}"
        if mode == "some":
            typed = [p.strip() for p in self.values["sites_text"].split(",") if p.strip()]
            return list(dict.fromkeys(self.chosen + typed))
        return "all"


def window_form(form: Any, zone: ZoneInfo, lang: Lang) -> WindowForm:
    """Parse the form; ``errors`` holds what is wrong before the service is asked."""
    values = {k: _s(form, k) for k in ("kind", "title", "start", "end", "rooms_mode", "group",
                                        "sites_text", "duration_min")}
    chosen = [v for v in form.getlist("sites") if isinstance(v, str)] if form else []
    now = _s(form, "action") == "now"
    f = WindowForm(values, chosen, now)
    if values["kind"] not in ("test", "session"):
        f.errors.setdefault("kind", []).append(word("bad_choice", lang))
    if values["rooms_mode"] not in ("all", "group", "some"):
        f.errors.setdefault("rooms", []).append(word("bad_choice", lang))
    elif values["rooms_mode"] == "group" and not values["group"]:
        f.errors.setdefault("rooms", []).append(word("required", lang))
    if now:
        try:
            f.duration_min = float(values["duration_min"].replace(",", "."))
        except ValueError:
            f.errors.setdefault("duration_min", []).append(word("bad_number", lang))
        return f
    for key in ("start", "end"):
        if not values[key]:
            f.errors.setdefault(key, []).append(word("required", lang))
            continue
        try:
            setattr(f, key, parse_time(values[key], zone))
        except ValueError:
            f.errors.setdefault(key, []).append(word("bad_time", lang))
    return f


@dataclass
class ResultForm:
    """A room's mic/speaker result and attendance as typed."""

    values: dict[str, str]
    errors: Errors = field(default_factory=dict)
    mic: Any = None
    speaker: Any = None
    attendance: int | None = None


def result_form(form: Any, lang: Lang) -> ResultForm:
    """Parse it: empty means "keep what was recorded"."""
    values = {k: _s(form, k) for k in ("mic", "speaker", "attendance")}
    f = ResultForm(values)
    for key in ("mic", "speaker"):
        v = values[key]
        if v and v not in RESULTS:
            f.errors.setdefault(key, []).append(word("bad_choice", lang))
        setattr(f, key, v or None)
    a = values["attendance"]
    if a:
        if not (a.isascii() and a.isdigit()):   # "²" is a digit int() refuses
            f.errors.setdefault("attendance", []).append(word("bad_whole", lang))
        else:
            f.attendance = int(a)
    return f
