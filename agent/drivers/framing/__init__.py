"""Pure framing parsers: bytes in, typed frames out, no I/O (and so fuzzable).

Each parser has ``feed(data: bytes) -> list[frame]`` and ``discard_partial()``. Bytes that
cannot be read become :class:`~agent.drivers.framing.lines.Garbage` frames rather than
exceptions; reply-level helpers raise only :mod:`agent.drivers.base` errors.
"""
