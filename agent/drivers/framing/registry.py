"""Every framing parser by name, with the frames it may return (the fuzzers go through all)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.drivers.framing import poly, sis, visca, xapi, yealink
from agent.drivers.framing.lines import Garbage, LineSplitter

PARSERS: dict[str, Callable[[], Any]] = {
    "lines": LineSplitter, "xapi": xapi.XapiParser, "poly": poly.PolyParser,
    "yealink": yealink.YealinkParser, "visca": visca.ViscaParser, "sis": sis.SisParser,
}

FRAME_TYPES: dict[str, Any] = {
    "lines": str | Garbage, "xapi": xapi.Frame, "poly": poly.Frame, "yealink": yealink.Frame,
    "visca": visca.Frame, "sis": sis.Frame,
}
"""What each parser may return: its frames, or :class:`Garbage`."""
