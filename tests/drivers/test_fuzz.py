"""Property tests: arbitrary bytes into every framing parser and reply collector give typed
frames or typed errors, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers import DeviceError
from agent.drivers.framing import poly, visca, xapi
from agent.drivers.framing.lines import Garbage, LineSplitter
from agent.drivers.framing.registry import FRAME_TYPES, PARSERS

CHUNKS = st.lists(st.binary(max_size=80), max_size=12)
# Bytes that look a bit like the protocols, so the interesting branches are reached.
WORDS = st.sampled_from([
    b"*s Standby State: ", b"Standby", b"Off", b"** end", b"OK", b"ERROR", b"\r\n", b"\r",
    b"*r StandbyActivateResult (status=Error):", b"    Reason: \"x\"", b"login: ",
    b"Password:", b"*s Call 3 Status: Connected", b"callinfo begin", b"callinfo end",
    b"callinfo:34:a:b:384:connected:notmuted:outgoing:videocall", b"callinfo:1:",
    b"cs: call[34] chan[0] dialstr[1] state[RINGING]", b"error: x", b"sysstatus ", b"talking",
    b"version \"model\"", b"Amt1", b"Vol082", b"E13", b"(c) Copyright", b"\x90\x41\xff",
    b"\x90\x50\x02\xff", b"\x90\x60\x41\xff", b"\x90\x38\xff", b"\x88\x30\x02\xff", b"\xff",
    b"\x80", b"\x00", b"\xc3\xa0", b"system is not in a call",
])
MIXED = st.lists(st.one_of(WORDS, st.binary(max_size=8)), max_size=30)



@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None)
@given(chunks=st.one_of(CHUNKS, MIXED))
def test_parsers_take_anything(name: str, chunks: list[bytes]) -> None:
    parser = PARSERS[name]()
    for chunk in chunks:
        for frame in parser.feed(chunk):
            assert isinstance(frame, FRAME_TYPES[name])
    assert isinstance(parser.pending, bool)
    parser.discard_partial()
    assert not parser.pending and parser.feed(b"") == []


@settings(max_examples=300, deadline=None)
@given(chunks=MIXED, block=st.booleans(), require_ok=st.booleans())
def test_xapi_replies_raise_only_typed_errors(chunks: list[bytes], block: bool,
                                              require_ok: bool) -> None:
    parser = xapi.XapiParser()
    collector = xapi.ReplyCollector(block=block, require_ok=require_ok)
    try:
        for chunk in chunks:
            for frame in parser.feed(chunk):
                if (reply := collector.add(frame)) is not None:
                    xapi.call_from_statuses(reply.statuses)
                    xapi.power_from_standby(reply.value("Standby State"))
                    return
    except DeviceError:
        pass


@settings(max_examples=300, deadline=None)
@given(chunks=MIXED)
def test_poly_callinfo_raises_only_typed_errors(chunks: list[bytes]) -> None:
    parser = poly.PolyParser()
    collector = poly.CallInfoCollector()
    try:
        for chunk in chunks:
            for frame in parser.feed(chunk):
                if collector.add(frame) is not None:
                    return
    except DeviceError:
        pass


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=900), cuts=st.lists(st.integers(0, 900), max_size=10))
def test_line_splitting_ignores_how_bytes_arrive(data: bytes, cuts: list[int]) -> None:
    whole = LineSplitter().feed(data)
    splitter = LineSplitter()
    pieces: list[str | Garbage] = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        pieces += splitter.feed(data[last:cut])
        last = max(last, cut)
    assert pieces == whole


HEADERS = st.integers(1, 7).map(lambda a: 0x80 | ((a + 8) << 4) & 0xF0)
BODY = st.lists(st.integers(0, 0x7F), min_size=1, max_size=13).map(bytes)


@settings(max_examples=300, deadline=None)
@given(noise=st.binary(max_size=40).map(lambda b: b.replace(b"\xff", b"")),
       head=HEADERS, body=BODY)
def test_visca_finds_a_reply_behind_any_noise(noise: bytes, head: int, body: bytes) -> None:
    packet = bytes([head]) + body + b"\xff"
    frames = visca.ViscaParser().feed(noise + packet)
    assert frames[-1] == visca.classify(packet)
    assert all(isinstance(f, Garbage) for f in frames[:-1])
