"""Line framing shared by the ASCII protocols (Cisco xAPI, Poly, Yealink, Extron, generic).

Lines end with CR, LF or CR LF; empty lines are dropped. A line that is not clean UTF-8
text, or that runs past ``max_line`` bytes without an end, becomes a :class:`Garbage`
frame: noise on the wire is a fact to report, not a crash.

Example::

    >>> s = LineSplitter()
    >>> s.feed(b"OK\\r\\nVol0")
    ['OK']
    >>> s.feed(b"82\\r\\n"), s.partial
    (['Vol082'], '')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

_ALLOWED_CONTROL = {"\t"}
F = TypeVar("F")


@dataclass(frozen=True)
class Garbage:
    """Bytes that make no sense in this protocol (noise, wrong baud rate, boot messages)."""

    raw: bytes


def decode_line(raw: bytes) -> str | Garbage:
    """UTF-8 text without control characters, or :class:`Garbage`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Garbage(raw)
    if any((ord(c) < 32 or ord(c) == 127) and c not in _ALLOWED_CONTROL for c in text):
        return Garbage(raw)
    return text


class LineSplitter:
    """Cut a byte stream into text lines; see the module docstring."""

    def __init__(self, max_line: int = 1024) -> None:
        self.max_line = max_line
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[str | Garbage]:
        """Add bytes; return every complete line (or Garbage) they finish."""
        out: list[str | Garbage] = []
        self._buf += data
        while True:
            ends = [i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0]
            if not ends:
                break
            cut = min(ends)
            raw = bytes(self._buf[:cut])
            del self._buf[:cut + 1]
            if raw:
                out.append(decode_line(raw) if len(raw) <= self.max_line else Garbage(raw))
        if len(self._buf) > self.max_line:
            out.append(Garbage(bytes(self._buf)))
            self._buf.clear()
        return out

    @property
    def partial(self) -> str:
        """The unfinished line so far, as text (empty if it is not readable text)."""
        text = decode_line(bytes(self._buf))
        return text if isinstance(text, str) else ""

    @property
    def pending(self) -> bool:
        """True while an unfinished line is buffered."""
        return bool(self._buf)

    def discard_partial(self) -> None:
        """Forget an unfinished line (noise that arrived before our command)."""
        self._buf.clear()


class LineParser(Generic[F]):
    """Line framing plus a protocol's ``classify(text) -> frame``; Garbage passes through."""

    def __init__(self, classify: Callable[[str], F], max_line: int = 1024) -> None:
        self._classify = classify
        self._lines = LineSplitter(max_line)

    def feed(self, data: bytes) -> list[F | Garbage]:
        """Add bytes; return the frames they complete."""
        return [f if isinstance(f, Garbage) else self._classify(f)
                for f in self._lines.feed(data)]

    @property
    def pending(self) -> bool:
        """True while an unfinished line is buffered."""
        return self._lines.pending

    def discard_partial(self) -> None:
        """Forget an unfinished line."""
        self._lines.discard_partial()
