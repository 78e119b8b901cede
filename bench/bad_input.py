"""The bad-input campaign (issue 5, item 6): hypothesis throws wrong, broken, huge, replayed and
foreign input at every door of the room agent and checks that each gets a reason (or a typed
error), changes nothing and leaves the agent alive.

Targets:

* ``command``  — command payloads through the real agent path (``Agent.handle(Incoming)``);
  each must get exactly one reply, ``invalid`` or ``refused`` with a reason naming a field or
  the payload, and leave relays, pins, the lock, the schedule and the saved state unchanged;
  a replayed id must get its first reply again, byte for byte, and do nothing.
* ``schedule`` — schedule payloads (retained): each invalid one gives one ``schedule_rejected``
  event (``digest``, ``field: message`` problems; not again for the same payload twice in a
  row), and the schedule in force and its disk cache stay.
* ``config``   — site config text: only ``ConfigError`` with one-line ``path: message`` problems.
* ``serial``   — every framing parser, the reply collectors, and every driver talking to a
  scripted port that answers garbage: only typed frames and ``DeviceError`` subclasses.
* ``driver_settings`` — arbitrary ``settings:`` mappings for every driver: only SettingsError.

Run::

    .venv/bin/python bench/bad_input.py --examples 3000 [--seed 1]

``run_campaign(examples, seed)`` is what the test suite calls with a small number.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import serial
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from agent.config import ConfigError, SiteConfig, load_config, parse_config
from agent.core import room as core
from agent.core.events import Tick
from agent.drivers import DRIVERS, DeviceError, SettingsError
from agent.drivers.framing import poly, xapi
from agent.drivers.framing.registry import FRAME_TYPES, PARSERS
from agent.hardware.pins import mock_factory
from agent.link.mqtt import Incoming
from agent.link.payloads import (
    ARGS,
    MAX_PAYLOAD,
    PayloadError,
    parse_command,
    parse_schedule,
    schedule_digest,
)
from agent.runtime import Agent
from agent.store import StateDir

ROOT = Path(__file__).resolve().parents[1]

# The scripted serial port is a pyserial URL handler beside this file (scripted://<name>).
sys.path.insert(0, str(Path(__file__).resolve().parent))
scripted = importlib.import_module("scripted_serial.protocol_scripted")
if "scripted_serial" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("scripted_serial")
SITE_FILE = ROOT / "firmware_config" / "sites" / "sim-room.yaml"
T0 = datetime(2026, 11, 30, 0, 50, tzinfo=UTC).timestamp()   # 10 min before the test window
REPLY_MAX = 16 * 1024        # a reply must stay far below the broker's 256 KiB limit
EVENT_MAX = 16 * 1024
COMMAND_FIELDS = {"(payload)", "id", "name", "args", "sender", "site", "ts"}
SCHEDULE_FIELDS = {"(payload)", "version", "site", "ts", "windows"}
ID_RE = re.compile(r"^[A-Za-z0-9._:@-]+$")
OTHER_ROOMS = ["vq-tan-doan", "xa-khac", "SIM-ROOM", "sim-room ", "", "sim_room", "phòng-khác"]


# --------------------------------------------------------------------------- figures
@dataclass
class Figures:
    """What a campaign did and found. ``exceptions`` and ``state_changes`` must stay empty."""

    tried: Counter[str] = field(default_factory=Counter)        # inputs per target
    outcomes: Counter[str] = field(default_factory=Counter)     # "target outcome" -> count
    exceptions: list[str] = field(default_factory=list)         # escaped or untyped errors
    state_changes: list[str] = field(default_factory=list)      # bad input that changed state
    violations: list[str] = field(default_factory=list)         # wrong reply, reason, event…
    notes: list[str] = field(default_factory=list)              # observations (not failures)
    seconds: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.tried.values())

    @property
    def ok(self) -> bool:
        return not (self.exceptions or self.state_changes or self.violations)

    def fail(self, kind: str, target: str, what: str, data: Any) -> None:
        bucket = {"exception": self.exceptions, "state": self.state_changes}.get(
            kind, self.violations)
        bucket.append(f"{target}: {what} — input {_short(data)}")

    def table(self) -> str:
        rows = [f"{'target':<16}{'inputs':>9}{'seconds':>10}{'inputs/s':>11}"]
        for t in self.tried:
            s = self.seconds[t]
            rows.append(f"{t:<16}{self.tried[t]:>9}{s:>10.1f}{self.tried[t] / max(s, 1e-9):>11.0f}")
        s = sum(self.seconds.values())
        rows.append(f"{'total':<16}{self.total:>9}{s:>10.1f}{self.total / max(s, 1e-9):>11.0f}")
        rows.append("")
        rows.append("outcomes:")
        for k, n in sorted(self.outcomes.items()):
            rows.append(f"  {k:<44}{n:>8}")
        rows.append("")
        rows.append(f"exceptions (must be 0):    {len(self.exceptions)}")
        rows.append(f"state changes (must be 0): {len(self.state_changes)}")
        rows.append(f"other violations (must be 0): {len(self.violations)}")
        for line in (self.exceptions + self.state_changes + self.violations)[:20]:
            rows.append(f"  ! {line}")
        for note in self.notes:
            rows.append(f"  note: {note}")
        return "\n".join(rows)


def _short(data: Any, n: int = 160) -> str:
    text = repr(data)
    return text if len(text) <= n else f"{text[:n]}… ({len(text)} chars)"


def _run_given(strategy: st.SearchStrategy[Any], body: Callable[[Any], None], examples: int,
               seed: int | None) -> None:
    """Run ``body`` on ``examples`` inputs drawn by hypothesis (no shrinking: ``body`` records
    failures itself so that every input is counted)."""

    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(x: Any) -> None:
        body(x)

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()


# --------------------------------------------------------------------------- JSON pieces
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=30))
JSON = st.recursive(SCALARS, lambda kids: st.one_of(
    st.lists(kids, max_size=5),
    st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(
        ["id", "name", "args", "on", "site", "ts", "version", "windows", "start", "end",
         "kind"])), kids, max_size=5)), max_leaves=20)
NOT_BOOL = st.sampled_from([2, -1, 0.5, "maybe", "oui", [], {}, None, [True], {"on": True}])
NOT_STR = st.sampled_from([0, 1.5, True, None, [], {}, ["x"], {"x": 1}])
NOT_NUMBER = st.sampled_from(["abc", "", [], {}, None, "1e", "sáu mươi", [60]])
NOT_DICT = st.sampled_from([[], [1, 2], "args", 0, 1.5, True, None])
BAD_TS = st.sampled_from(["yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "",
                          "T", "10000-01-01T00:00:00Z", [], {}, "2026-11-30 25:00", 1e20,
                          "9999-99-99"])
BAD_ID_STR = st.one_of(
    st.just(""),
    st.integers(65, 400).map(lambda n: "c" * n),
    st.text(min_size=1, max_size=70).filter(lambda s: not ID_RE.match(s) or len(s) > 64),
    st.sampled_from(["a b", "c/1", "c#", "c+", "lệnh-1", "c\n", "c\x00", "*"]))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- the agent
class Harness:
    """A real :class:`Agent` on mock pins, without a broker, with a frozen clock; replies are
    caught where the agent hands them to the MQTT link."""

    def __init__(self, state_dir: Path) -> None:
        self.cfg: SiteConfig = load_config(SITE_FILE)
        self.site = self.cfg.site.id
        self.now = T0
        self.factory = mock_factory()
        self.agent = Agent(self.cfg, self.factory, StateDir(state_dir), clock=lambda: self.now,
                           connect=False)
        self.agent.clock_synced = lambda: True  # type: ignore[method-assign]
        self.replies: list[tuple[bytes, bytes | None]] = []
        # The least invasive seam: the link's publish_reply, on this instance only.
        self.agent.link.publish_reply = (  # type: ignore[method-assign]
            lambda payload, correlation=None: self.replies.append((payload, correlation)))
        self.handled: deque[str] = deque(maxlen=256)   # ids the agent has answered
        self.first: dict[str, bytes] = {}               # id -> its first reply
        self.fresh = 0
        self.agent.start()
        start = datetime.fromtimestamp(T0, UTC) + timedelta(minutes=10)
        self.schedule = {"version": "v1", "site": self.site, "windows": [
            {"id": "t-main", "kind": "test", "title": "Kiểm tra kết nối",
             "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()},
            {"id": "s-later", "kind": "session", "title": "Họp trực tuyến",
             "start": (start + timedelta(days=1)).isoformat(),
             "end": (start + timedelta(days=1, hours=2)).isoformat()}]}
        self.agent.handle(Incoming("schedule", _dumps(self.schedule), retained=True))
        for _ in range(60):  # let the window's power-up sequence finish
            if self.agent.state.sequence is None:
                break
            self.now += 5
            self.agent.handle(Tick())
        assert self.agent.state.sequence is None, "setup: power-up did not finish"
        assert self.agent.state.locked_by == "t-main", "setup: the room should be locked"
        for cid, name, args in [("seen-0", "request_state", {}), ("seen-1", "request_state", {}),
                                ("seen-2", "operator_check", {"timeout_s": 600})]:
            self.agent.handle(Incoming("command", _dumps({"id": cid, "name": name,
                                                          "args": args})))
            self.handled.append(cid)
            self.first[cid] = self.replies[-1][0]
        self.replies.clear()
        self.ack_events()

    def close(self) -> None:
        self.agent.close()

    def ack_events(self) -> list[Any]:
        """What the agent recorded since last time, acknowledged as the broker would."""
        recs = self.agent.outbox.pending()
        for r in recs:
            self.agent.outbox.ack(r.seq)
        return recs

    def fingerprint(self) -> dict[str, Any]:
        a = self.agent
        return {
            "relays": dict(a.state.relays),
            "persistent": core.persistent(a.state),
            "schedule": (a.state.schedule, a.state.schedule_version),
            "lock": core.lock_window(a.settings, a.state, self.now),
            "pins": {n: self.factory.pin(d.relay.pin).state for n, d in a.cfg.devices.items()},
            "saved_room": a.store.load_room(),
            "cached_schedule": a.store.load_schedule(),
        }


# --------------------------------------------------------------------------- commands
def _valid_command(name: str, draw: Callable[[Any], Any]) -> dict[str, Any]:
    args: dict[str, Any]
    match name:
        case "power":
            args = {"on": draw(st.booleans())}
            if draw(st.booleans()):
                args["device"] = draw(st.sampled_from(["codec", "camera", "amplifier"]))
            if draw(st.booleans()):
                args["override"] = draw(st.booleans())
        case "start_window":
            args = {"kind": draw(st.sampled_from(["test", "session"])),
                    "duration_min": draw(st.floats(1, 1440))}
        case "complete_window":
            args = {"window_id": draw(st.sampled_from(["t-main", "s-later"]))}
        case "operator_check":
            args = {"timeout_s": draw(st.floats(5, 3600))}
        case _:
            args = {}
    cmd: dict[str, Any] = {"id": "x", "name": name, "args": args}
    if draw(st.booleans()):
        cmd["sender"] = draw(st.text(max_size=40))
    return cmd


REQUIRED_ARG = {"power": "on", "complete_window": "window_id"}
BAD_ARG_VALUES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "power": {"on": NOT_BOOL, "override": NOT_BOOL,
              "device": st.one_of(NOT_STR.filter(lambda v: v is not None),
                                  st.just("d" * 33))},
    "start_window": {"kind": st.one_of(NOT_STR, st.sampled_from(["Test", "meeting", ""])),
                     "window_id": st.one_of(BAD_ID_STR, NOT_STR.filter(lambda v: v is not None)),
                     "title": st.one_of(NOT_STR.filter(lambda v: v is not None),
                                        st.just("t" * 201)),
                     "duration_min": st.one_of(NOT_NUMBER, st.sampled_from(
                         [0, -1, 1441, 1e9, math.inf, -math.inf, math.nan]))},
    "complete_window": {"window_id": st.one_of(BAD_ID_STR, NOT_STR)},
    "operator_check": {"timeout_s": st.one_of(NOT_NUMBER.filter(lambda v: v is not None),
                                              st.sampled_from([0, 4.99, 3601, -5, math.inf,
                                                               math.nan]))},
}


@st.composite
def mutated_command(draw: Callable[[Any], Any]) -> tuple[str, Any]:
    """A valid command broken in 1–3 ways, each enough to make it invalid."""
    name = draw(st.sampled_from(list(ARGS)))
    cmd = _valid_command(name, draw)
    cmd["id"] = f"m-{draw(st.integers(0, 10**9))}"
    ops = draw(st.lists(st.sampled_from(
        ["drop_id", "drop_name", "drop_arg", "id_type", "id_str", "name", "args_type",
         "args_extra", "arg_value", "top_extra", "sender", "site", "ts"]),
        min_size=1, max_size=3))
    for op in ops:
        if op == "drop_id":
            cmd.pop("id", None)
        elif op == "drop_name":
            cmd.pop("name", None)
        elif op == "drop_arg" and name in REQUIRED_ARG and isinstance(cmd.get("args"), dict):
            cmd["args"].pop(REQUIRED_ARG[name], None)
        elif op == "drop_arg":
            cmd.pop("id", None)
        elif op == "id_type":
            cmd["id"] = draw(st.one_of(st.integers(), st.floats(), NOT_STR))
        elif op == "id_str":
            cmd["id"] = draw(BAD_ID_STR)
        elif op == "name":
            cmd["name"] = draw(st.one_of(NOT_STR, st.text(max_size=70).filter(
                lambda s: s not in ARGS), st.sampled_from(["Power", "power ", "reboot"])))
        elif op == "args_type":
            cmd["args"] = draw(NOT_DICT)
        elif op == "args_extra":
            if not isinstance(cmd.get("args"), dict):
                cmd["args"] = {}
            key = draw(st.one_of(st.sampled_from(["overide", "On", "device ", "timeout",
                                                  "window", "force"]), st.text(max_size=20)))
            model = ARGS.get(str(cmd.get("name")))
            if model is not None and key in model.model_fields:
                key += "_x"
            cmd["args"][key] = draw(SCALARS)
        elif op == "arg_value":
            fields = BAD_ARG_VALUES.get(str(cmd.get("name")))
            if fields and isinstance(cmd.get("args"), dict):
                f = draw(st.sampled_from(sorted(fields)))
                cmd["args"][f] = draw(fields[f])
            else:
                cmd["args"] = {"unexpected": 1}
                cmd["name"] = "request_state"
        elif op == "top_extra":
            cmd[draw(st.sampled_from(["overide", "Id", "arg", "correlation", "extra"]))] = 1
        elif op == "sender":
            cmd["sender"] = draw(st.one_of(NOT_STR.filter(lambda v: v is not None),
                                           st.just("s" * 129)))
        elif op == "site":
            cmd["site"] = draw(st.one_of(st.sampled_from(OTHER_ROOMS), st.integers(),
                                         st.just("r" * 65)))
        elif op == "ts":
            cmd["ts"] = draw(BAD_TS)
    return "mutated", cmd


@st.composite
def replayed_command(draw: Callable[[Any], Any]) -> tuple[str, Any]:
    """A valid command whose id the agent has handled before (args possibly different)."""
    cmd = _valid_command(draw(st.sampled_from(list(ARGS))), draw)
    cmd["id"] = draw(st.integers(0, 10**6))   # an index into Harness.handled, resolved later
    return "replay", cmd


@st.composite
def semantic_command(draw: Callable[[Any], Any]) -> tuple[str, Any]:
    """Well-formed, fresh id, but the room must say no (lock, unknown device or window…)."""
    which = draw(st.sampled_from(["off_locked", "unknown_device", "no_window", "window_exists"]))
    args: dict[str, Any]
    match which:
        case "off_locked":
            name, args = "power", {"on": False}
            if draw(st.booleans()):
                args["device"] = draw(st.sampled_from(["codec", "camera", "amplifier"]))
        case "unknown_device":
            name, args = "power", {"on": draw(st.booleans()), "device": draw(
                st.text(min_size=1, max_size=32).filter(
                    lambda d: d not in ("codec", "camera", "amplifier")))}
        case "no_window":
            name, args = "complete_window", {"window_id": draw(st.from_regex(
                r"\A[A-Za-z0-9._:@-]{1,64}\Z").filter(lambda w: w not in ("t-main", "s-later")))}
        case _:
            name, args = "start_window", {"window_id": draw(st.sampled_from(["t-main",
                                                                             "s-later"]))}
    return "semantic", {"id": None, "name": name, "args": args}


def foreign_command(draw_cmd: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.tuples(st.just("foreign"), st.builds(
        lambda c, site, i: {**c, "site": site, "id": f"f-{i}"},
        draw_cmd, st.sampled_from([s for s in OTHER_ROOMS if s]), st.integers(0, 10**9)))


COMMAND_INPUTS = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=300)),
    st.tuples(st.just("text"), st.text(max_size=200)),
    st.tuples(st.just("json"), JSON),
    mutated_command(), mutated_command(), mutated_command(),
    replayed_command(), semantic_command(),
    foreign_command(st.builds(lambda n: {"name": n, "args": {}},
                              st.sampled_from(["request_state", "operator_check"]))),
)


def explicit_commands(site: str) -> Iterator[tuple[str, str, Any]]:
    """(label, category, payload) for the cases the brief names."""
    deep = b"[" * 10_000 + b"]" * 10_000
    yield "invalid UTF-8", "bytes", b"\xff\xfe\xfd not utf-8"
    yield "overlong UTF-8", "bytes", b'{"id": "\xc0\xaf", "name": "power"}'
    yield "lone surrogate", "bytes", b'{"id": "\xed\xa0\x80", "name": "power"}'
    yield "lone surrogate escape in id", "bytes", b'{"id": "\\ud800", "name": "power"}'
    yield "lone surrogate escape in name", "bytes", b'{"id": "s1", "name": "\\udfff"}'
    yield "lone surrogate escape in a key", "bytes", (b'{"id": "s2", "name": "power", '
                                                      b'"args": {"\\udc80": 1}}')
    yield "surrogate pair escape (valid)", "bytes", (b'{"id": "s3", "name": "power", '
                                                     b'"args": {"\\ud83d\\ude00": 1}}')
    yield "JSON nested 10,000 deep", "bytes", deep
    yield "args nested 10,000 deep", "bytes", (b'{"id": "deep", "name": "power", "args": '
                                                + deep + b"}")
    yield "nested 17 deep", "json", {"id": "d17", "name": "power", "args": _nest(15)}
    yield "300 KiB payload", "bytes", _dumps({"id": "big", "name": "power",
                                              "args": {"on": True}, "sender": "x" * 300 * 1024})
    yield "exactly the 256 KiB limit", "bytes", _pad_to(MAX_PAYLOAD)
    yield "one byte over the limit", "bytes", _pad_to(MAX_PAYLOAD + 1)
    yield "25,000 unknown args", "bytes", _dumps({"id": "wide", "name": "power", "args": {
        str(i): 0 for i in range(25_000)}})
    yield "one 200 KB key", "json", {"id": "key", "name": "power", "args": {"k" * 200_000: 0}}
    yield "5000-digit integer", "bytes", b'{"id": "n", "name": "power", "args": {"on": '\
        + b"1" * 5000 + b"}}"
    yield "NaN and Infinity", "bytes", (b'{"id": "nan", "name": "operator_check", '
                                        b'"args": {"timeout_s": NaN}}')
    yield "Infinity duration", "bytes", (b'{"id": "inf", "name": "start_window", '
                                         b'"args": {"duration_min": Infinity}}')
    yield "null", "bytes", b"null"
    yield "empty payload", "bytes", b""
    yield "whitespace", "bytes", b" \n\t "
    yield "array", "json", [{"id": "arr", "name": "power", "args": {"on": False}}]
    yield "empty array", "json", []
    yield "a number", "json", 42
    yield "a string", "json", "power off"
    yield "number id", "json", {"id": 7, "name": "request_state"}
    yield "float id", "json", {"id": 7.5, "name": "request_state"}
    yield "bool id", "json", {"id": True, "name": "request_state"}
    yield "65-char id", "json", {"id": "c" * 65, "name": "request_state"}
    yield "1000-char id", "json", {"id": "c" * 1000, "name": "request_state"}
    yield "empty id", "json", {"id": "", "name": "request_state"}
    yield "id with slash", "json", {"id": "c/1", "name": "request_state"}
    yield "duplicate keys", "bytes", b'{"id": "dk", "name": "request_state", "name": "x"}'
    yield "bool as string", "json", {"id": "bs", "name": "power", "args": {"on": "false!"}}
    yield "another room", "json", {"id": "other", "name": "power", "args": {"on": False},
                                   "site": "vq-tan-doan"}
    yield "typo override", "json", {"id": "typo", "name": "power",
                                    "args": {"on": False, "overide": True}}
    yield "ts not a time", "json", {"id": "tsx", "name": "request_state", "ts": "yesterday"}
    yield "BOM before JSON", "bytes", b"\xef\xbb\xbf" + _dumps({"id": "bom",
                                                                "name": "request_state"})


def _nest(n: int) -> Any:
    v: Any = 0
    for _ in range(n):
        v = [v]
    return v


def _pad_to(size: int) -> bytes:
    head = b'{"id": "pad", "name": "power", "args": {"on": false}, "sender": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def _names_field(problem: str, fields: set[str]) -> bool:
    """``field.path: message`` whose field is one the schema knows, or an unknown field named
    as the sender spelt it."""
    head, sep, msg = problem.partition(": ")
    if not sep or not msg:
        return False
    return head.split(".", 1)[0] in fields or msg.startswith("unknown field")


def check_command(h: Harness, fig: Figures, category: str, raw: Any,
                  correlation: bytes | None, label: str = "") -> None:
    """Feed one command payload to the agent and check the one reply and the unchanged room."""
    target = "command"
    if category == "replay":
        raw = {**raw, "id": h.handled[raw["id"] % len(h.handled)]}
    elif category == "semantic":
        h.fresh += 1
        raw = {**raw, "id": f"sem-{h.fresh}"}
    elif category == "mutated" and isinstance(raw.get("id"), str) and raw["id"].startswith("m-"):
        h.fresh += 1   # each mutated command is new: a repeated id would only be answered
        raw = {**raw, "id": f"m-{h.fresh}"}   # from disk, its payload never looked at
    payload = raw if isinstance(raw, bytes) else (
        raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else _dumps(raw))
    if category in ("bytes", "text", "json"):
        try:   # junk that happens to be a well-formed command is not bad input: skip it
            parse_command(payload, h.site)
            fig.outcomes["command skipped (junk was valid)"] += 1
            return
        except PayloadError:
            pass
        except Exception as e:
            fig.fail("exception", target, f"parse_command raised {type(e).__name__}: {e}",
                     payload)
    fig.tried[target] += 1
    before = h.fingerprint()
    state_before = h.agent.state
    h.replies.clear()
    try:
        h.agent.handle(Incoming("command", payload, correlation=correlation))
    except Exception as e:
        fig.fail("exception", target, f"{label or category}: {type(e).__name__}: {e}", payload)
        return
    replies = list(h.replies)
    events = h.ack_events()
    after = h.fingerprint()
    for key in before:
        if before[key] != after[key]:
            fig.fail("state", target, f"{label or category}: {key} changed", payload)
    if h.agent.state != state_before:
        changed = [f for f in core.RoomState.__dataclass_fields__
                   if getattr(h.agent.state, f) != getattr(state_before, f)]
        fig.outcomes[f"command other state moved: {','.join(changed)}"] += 1
    if events:
        fig.fail("violation", target, f"{label or category}: events {[e.kind for e in events]}",
                 payload)
    if len(replies) != 1:
        fig.fail("violation", target, f"{label or category}: {len(replies)} replies", payload)
        return
    body, corr = replies[0]
    if corr != correlation:
        fig.fail("violation", target, "correlation data not echoed", payload)
    if len(body) > REPLY_MAX:
        fig.fail("violation", target, f"reply of {len(body)} bytes", payload)
    try:
        reply = json.loads(body)
    except ValueError:
        fig.fail("violation", target, "reply is not JSON", payload)
        return
    status, reason, cid = reply.get("status"), reply.get("reason"), reply.get("command_id")
    if reply.get("site") != h.site:
        fig.fail("violation", target, f"reply site {reply.get('site')!r}", payload)
    if category == "replay":
        if body != h.first.get(raw["id"]):
            fig.fail("violation", target, f"replayed id not answered with its first reply: "
                                          f"{body[:200]!r}", payload)
        else:
            fig.outcomes["command replay -> first reply again"] += 1
        return
    if isinstance(cid, str) and cid not in h.first:
        h.first[cid] = body
    elif isinstance(cid, str) and h.first[cid] != body:
        fig.fail("violation", target, f"id {cid!r} answered differently the second time",
                 payload)
    fig.outcomes[f"command {category} -> {status}"] += 1
    if status not in ("invalid", "refused") or not isinstance(reason, str) or not reason:
        fig.fail("violation", target, f"{label or category}: status {status!r} reason "
                                      f"{reason!r}", payload)
        return
    if category == "foreign" and not (status == "invalid" and reason.startswith("site: ")):
        fig.fail("violation", target, f"another room's command: {reason!r}", payload)
    if category == "semantic":
        # Refusals decided by the core: the reason must name what was wrong.
        if not any(str(v) in reason for v in raw["args"].values()) and "locked" not in reason:
            fig.fail("violation", target, f"reason does not say why: {reason!r}", payload)
        if status == "invalid" and not _names_field(reason, COMMAND_FIELDS):
            fig.outcomes["command semantic invalid, reason not 'field: message'"] += 1
    elif status == "invalid" and not _names_field(reason, COMMAND_FIELDS):
        fig.fail("violation", target, f"reason names no field: {reason!r}", payload)
    try:
        sent = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        sent = None
    sent_id = sent.get("id") if isinstance(sent, dict) else None
    usable = (isinstance(sent_id, str) and 0 < len(sent_id) <= 64
              and not any("\ud800" <= c <= "\udfff" for c in sent_id))
    if usable and len(payload) <= MAX_PAYLOAD and cid != sent_id:
        fig.fail("violation", target, f"reply command_id {cid!r}, sent {sent_id!r}", payload)
    if not usable and cid is not None:
        fig.fail("violation", target, f"reply names id {cid!r} the message did not have",
                 payload)
    if category in ("semantic",) and status in ("invalid", "refused"):
        h.handled.append(raw["id"])


# --------------------------------------------------------------------------- schedules
def _window(wid: str, start: datetime, minutes: float, kind: str = "test") -> dict[str, Any]:
    return {"id": wid, "kind": kind, "title": "Cửa sổ",
            "start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat()}


@st.composite
def mutated_schedule(draw: Callable[[Any], Any]) -> tuple[str, Any]:
    """A valid schedule broken in 1–3 ways, each enough to make it invalid."""
    base = datetime.fromtimestamp(T0, UTC) + timedelta(minutes=draw(st.integers(-600, 6000)))
    n = draw(st.integers(1, 4))
    sched: dict[str, Any] = {"version": f"v{draw(st.integers(2, 10**6))}", "site": "sim-room",
                             "windows": [_window(f"w{i}", base + timedelta(hours=3 * i), 30)
                                         for i in range(n)]}
    ops = draw(st.lists(st.sampled_from(
        ["drop_version", "drop_windows", "drop_wfield", "version_type", "version_len",
         "windows_type", "window_type", "wid", "kind", "time_type", "time_str", "end_before",
         "too_long", "dup_id", "too_many", "extra", "wextra", "site", "title", "ts"]),
        min_size=1, max_size=3))
    w = sched["windows"][draw(st.integers(0, n - 1))]
    for op in ops:
        ws = sched.get("windows")
        if op == "drop_version":
            sched.pop("version", None)
        elif op == "drop_windows":
            sched.pop("windows", None)
        elif op == "drop_wfield":
            w.pop(draw(st.sampled_from(["id", "kind", "start", "end"])), None)
        elif op == "version_type":
            sched["version"] = draw(NOT_STR)
        elif op == "version_len":
            sched["version"] = draw(st.sampled_from(["", "v" * 65]))
        elif op == "windows_type":
            sched["windows"] = draw(st.sampled_from([{}, "w", 0, None, True, {"w0": w}]))
        elif op == "window_type" and isinstance(ws, list):
            ws.append(draw(st.sampled_from([None, 0, "w", [], ["w"]])))
        elif op == "wid":
            w["id"] = draw(st.one_of(BAD_ID_STR, NOT_STR))
        elif op == "kind":
            w["kind"] = draw(st.one_of(NOT_STR, st.sampled_from(["Test", "meeting", ""])))
        elif op == "time_type":
            w[draw(st.sampled_from(["start", "end"]))] = draw(st.sampled_from(
                [None, [], {}, "", [2026, 11, 30]]))
        elif op == "time_str":
            w[draw(st.sampled_from(["start", "end"]))] = draw(st.sampled_from(
                ["tomorrow", "2026-13-01T08:00", "2026-11-31T08:00:00", "08:00",
                 "2026-11-30T25:00:00+07:00", "10000-01-01T00:00:00"]))
        elif op == "end_before":
            w["start"], w["end"] = base.isoformat(), (base - timedelta(
                seconds=draw(st.integers(0, 10**6)))).isoformat()
        elif op == "too_long":
            w["start"], w["end"] = base.isoformat(), (base + timedelta(
                hours=24, seconds=draw(st.integers(1, 10**6)))).isoformat()
        elif op == "dup_id" and isinstance(ws, list):
            ws.append({**w})
        elif op == "too_many" and isinstance(ws, list):
            sched["windows"] = [_window(f"n{i}", base + timedelta(hours=i), 30)
                                for i in range(501)]
        elif op == "extra":
            sched[draw(st.sampled_from(["windown", "Version", "rooms", "x"]))] = 1
        elif op == "wextra":
            w[draw(st.sampled_from(["duration", "Start", "room", "lock"]))] = 1
        elif op == "site":
            sched["site"] = draw(st.one_of(st.sampled_from(OTHER_ROOMS), st.integers()))
        elif op == "title":
            w["title"] = draw(st.one_of(NOT_STR.filter(lambda v: v is not None),
                                        st.just("t" * 201)))
        elif op == "ts":
            sched["ts"] = draw(BAD_TS)
        else:
            sched.pop("version", None)
    return "mutated", sched


SCHEDULE_INPUTS = st.one_of(
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=300)),
    st.tuples(st.just("json"), JSON),
    mutated_schedule(), mutated_schedule(), mutated_schedule(),
)


def explicit_schedules() -> Iterator[tuple[str, str, Any]]:
    deep = b"[" * 10_000 + b"]" * 10_000
    yield "invalid UTF-8", "bytes", b"\xff\xfe schedule"
    yield "lone surrogate escape", "bytes", (b'{"version": "s", "windows": [], '
                                             b'"\\ud800": 1}')
    yield "lone surrogate in a title", "bytes", (
        b'{"version": "s", "windows": [{"id": "a", "kind": "test", "title": "\\udc00", '
        b'"start": "2026-12-01T08:00:00", "end": "2026-12-01T09:00:00"}]}')
    yield "JSON nested 10,000 deep", "bytes", deep
    yield "windows nested 10,000 deep", "bytes", b'{"version": "d", "windows": ' + deep + b"}"
    yield "300 KiB", "bytes", _dumps({"version": "big", "windows": [], "x": "x" * 300 * 1024})
    yield "null", "bytes", b"null"
    yield "array", "json", []
    yield "a number", "json", 3
    yield "5000-digit integer", "bytes", b'{"version": ' + b"9" * 5000 + b', "windows": []}'
    yield "NaN window time", "bytes", (b'{"version": "n", "windows": [{"id": "a", "kind": '
                                       b'"test", "start": NaN, "end": Infinity}]}')
    yield "500 bad windows", "json", {"version": "bad", "windows": [
        {"id": "a b", "kind": "x", "start": "x", "end": "y", "zz": 1}] * 500}
    yield "another room", "json", {"version": "o", "site": "vq-tan-doan", "windows": []}
    yield "version of 65", "json", {"version": "v" * 65, "windows": []}


def check_schedule(h: Harness, fig: Figures, category: str, raw: Any, label: str = "") -> None:
    target = "schedule"
    payload = raw if isinstance(raw, bytes) else _dumps(raw)
    if category in ("bytes", "json"):
        try:
            parse_schedule(payload, h.site, h.cfg.site.timezone)
            fig.outcomes["schedule skipped (junk was valid)"] += 1
            return
        except PayloadError:
            pass
        except Exception as e:
            fig.fail("exception", target, f"parse_schedule raised {type(e).__name__}: {e}",
                     payload)
    fig.tried[target] += 1
    before = h.fingerprint()
    state_before = h.agent.state
    digest = schedule_digest(payload)
    again = (h.agent.state_message()["schedule"]["rejected"] or {}).get("digest") == digest
    h.replies.clear()
    try:
        h.agent.handle(Incoming("schedule", payload, retained=True))
    except Exception as e:
        fig.fail("exception", target, f"{label or category}: {type(e).__name__}: {e}", payload)
        return
    events = h.ack_events()
    after = h.fingerprint()
    for key in before:
        if before[key] != after[key]:
            fig.fail("state", target, f"{label or category}: {key} changed", payload)
    if h.agent.state != state_before:
        fig.fail("state", target, f"{label or category}: room state changed", payload)
    if h.replies:
        fig.fail("violation", target, "a schedule got a reply", payload)
    kinds = [e.kind for e in events]
    if (h.agent.state_message()["schedule"]["rejected"] or {}).get("digest") != digest:
        fig.fail("violation", target, "state does not show the rejected schedule", payload)
    if again:
        if kinds:
            fig.fail("violation", target, f"the same rejected schedule again: events {kinds}",
                     payload)
        fig.outcomes["schedule rejected again -> no event"] += 1
        return
    if kinds != ["schedule_rejected"]:
        fig.fail("violation", target, f"{label or category}: events {kinds}", payload)
        return
    fig.outcomes[f"schedule {category} -> schedule_rejected"] += 1
    rec = events[0]
    if rec.data.get("digest") != digest:
        fig.fail("violation", target, f"schedule_rejected digest {rec.data.get('digest')!r}",
                 payload)
    problems = rec.data.get("problems")
    if len(rec.to_json()) > EVENT_MAX:
        fig.fail("violation", target, f"schedule_rejected of {len(rec.to_json())} bytes",
                 payload)
    if not problems or not all(isinstance(p, str) and _names_field(p, SCHEDULE_FIELDS)
                               for p in problems):
        fig.fail("violation", target, f"problems not 'field: message': {problems!r}", payload)


# --------------------------------------------------------------------------- config
BASE_YAML = SITE_FILE.read_text(encoding="utf-8")
BASE_CFG = yaml.safe_load(BASE_YAML)
CONFIG_VALUES = st.one_of(
    SCALARS, st.sampled_from([10**40, -(10**40), 1e308, -1e308, float("inf"), float("nan"), 28,
                              -1, 0, 65536, "26", "yes", "no", "on", "~", "Điểm cầu 🎥",
                              "\u202e", "x" * 10_000, [], {}, [26, 20], {"pin": 26}]))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def config_text(draw: Callable[[Any], Any]) -> tuple[str, str]:
    kind = draw(st.sampled_from(["tree", "tree", "tree", "pins", "text", "junk"]))
    if kind == "junk":
        return kind, draw(st.one_of(st.text(max_size=300), st.sampled_from(
            ["", "---", "[]", "null", "a: [", "{", "site: !!python/object:os.system x",
             "&a [*a]", "a: &x 1\nb: *y", "? [a]\n: b", "site:\n\t- x"])))
    cfg = json.loads(json.dumps(BASE_CFG))
    if kind == "pins":   # two things on one pin, or a pin that does not exist
        pins = _pin_paths(cfg)
        a, b = draw(st.sampled_from(pins)), draw(st.sampled_from(pins))
        _set(cfg, a, _get(cfg, b) if a != b else draw(st.sampled_from([28, -1, 99, "GPIO26"])))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(cfg)
        if not paths:
            break
        p = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["drop", "set", "set", "rename", "add"]))
        parent = _get(cfg, p[:-1])
        if op == "drop" and isinstance(parent, dict):
            parent.pop(p[-1], None)
        elif op == "rename" and isinstance(parent, dict):
            parent[f"{p[-1]}_"] = parent.pop(p[-1])
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(CONFIG_VALUES)
        else:
            _set(cfg, p, draw(CONFIG_VALUES))
    text = yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False)
    if kind == "text" and text:   # damage the text itself
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.text(max_size=8)) + text[i + draw(st.integers(0, 8)):]
    return kind, text


def _pin_paths(cfg: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [p for p in _paths(cfg) if p[-1] in ("pin", "red", "green", "blue")]


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        node = node[k]
    return node


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(node, path[:-1])[path[-1]] = value


# One line, except where an unknown key the operator typed holds a newline itself.
PROBLEM_RE = re.compile(r"^(\(file\)|[^\s:][^:\n]*): \S[^\n]*$|^.+: unknown field.*$", re.S)


def check_config(fig: Figures, kind: str, text: str, label: str = "") -> None:
    fig.tried["config"] += 1
    try:
        parse_config(text)
        fig.outcomes["config valid"] += 1
    except ConfigError as e:
        fig.outcomes[f"config {kind} -> ConfigError"] += 1
        bad = [p for p in e.problems if not isinstance(p, str) or not PROBLEM_RE.match(p)]
        if not e.problems or bad:
            fig.fail("violation", "config", f"{label or kind}: problems not 'path: message': "
                                            f"{bad or e.problems!r}"[:300], text)
    except Exception as e:
        fig.fail("exception", "config", f"{label or kind}: {type(e).__name__}: {e}"[:300], text)


def explicit_configs() -> Iterator[tuple[str, str, str]]:
    yield "nested 10,000 deep", "junk", "a: " + "[" * 10_000 + "]" * 10_000
    yield "5000-digit pin", "text", BASE_YAML.replace("pin: 16", "pin: " + "9" * 5000)
    yield "1e400 hold", "text", BASE_YAML.replace("hold_s: 3", "hold_s: 1e400")
    yield "NUL byte", "junk", "site: \x00"
    yield "lone surrogate", "junk", BASE_YAML.replace("Âm ly", "\udc80")
    yield "tab indent", "junk", "site:\n\tid: x"
    yield "button on a relay pin", "pins", BASE_YAML.replace("pin: 16", "pin: 26")
    yield "python tag", "junk", "site: !!python/object/apply:os.system ['true']"
    yield "alias bomb (small)", "junk", "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]"
    yield "a list", "junk", "- site\n- devices"
    yield "empty file", "junk", ""


# --------------------------------------------------------------------------- serial
WORDS = st.sampled_from([
    b"*s Standby State: ", b"Standby", b"Off", b"Halfwake", b"** end", b"OK", b"ERROR",
    b"\r\n", b"\r", b"\n", b"*r StandbyActivateResult (status=Error):", b"    Reason: \"x\"",
    b"login: ", b"Password:", b"*r Login successful", b"Login incorrect",
    b"*s Call 3 Status: Connected", "*s Call 3 DisplayName: \"Huyện\"".encode(), b"callinfo begin",
    b"callinfo end", b"callinfo:34:a:b:384:connected:notmuted:outgoing:videocall",
    b"callinfo:1:", b"cs: call[34] chan[0] dialstr[1] state[RINGING]", b"error: x",
    b"sysstatus ", b"talking", b"sleeping", b"version \"model\"", b"Amt1", b"Amt0", b"Vol082",
    b"E13", b"(c) Copyright", b"1.00", b"\x90\x41\xff", b"\x90\x50\x02\xff", b"\x90\x50\x03\xff",
    b"\x90\x60\x41\xff", b"\x90\x38\xff", b"\x88\x30\x02\xff", b"\x88\x01\x00\x01\xff",
    b"\xff", b"\x80", b"\x00", b"\xc3\xa0", b"system is not in a call", b"ON", b"STBY",
    b"ERR 3", b"\x1b[2J", b"\xfe" * 40,
])
MIXED = st.lists(st.one_of(WORDS, st.binary(max_size=12)), max_size=25).map(b"".join)
CHUNKS = st.lists(st.one_of(st.binary(max_size=80), MIXED), max_size=10)


FAST = {"reply_timeout_s": 0.002}
DRIVER_SETTINGS: dict[str, dict[str, Any]] = {
    "cisco_xapi": {**FAST, "login_probe_s": 0.002, "password": "pw"},
    "poly_group": {**FAST, "command_gap_s": 0, "password": "pw"},
    "yealink_vc": FAST,
    "sony_visca": {**FAST, "completion_timeout_s": 0.002},
    "extron_sis": {**FAST, "wake_volume": 40},
    "generic_line": {**FAST, "query_power": {"send": "PWR?", "on_regex": "ON",
                                             "standby_regex": "STBY"},
                     "ping": {"send": "PING", "expect": "."}, "error_regex": "^ERR"},
}
POWER_STATES = {"on", "standby", "off", "booting", "unknown"}


@st.composite
def serial_input(draw: Callable[[Any], Any]) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["parser", "parser", "collector", "driver", "driver"]))
    if kind == "parser":
        return kind, (draw(st.sampled_from(sorted(PARSERS))), draw(CHUNKS))
    if kind == "collector":
        return kind, (draw(st.sampled_from(["xapi", "poly"])), draw(CHUNKS),
                      draw(st.booleans()), draw(st.booleans()))
    return kind, (draw(st.sampled_from(sorted(DRIVERS))),
                  draw(st.sampled_from(["power_state", "wake", "standby", "call_state", "ping"])),
                  draw(st.lists(st.one_of(MIXED, st.binary(max_size=60)), max_size=8)),
                  draw(st.one_of(st.none(), st.integers(0, 4))))


def check_serial(fig: Figures, kind: str, data: Any) -> None:
    fig.tried["serial"] += 1
    try:
        if kind == "parser":
            name, chunks = data
            parser = PARSERS[name]()
            for chunk in chunks:
                for frame in parser.feed(chunk):
                    if not isinstance(frame, FRAME_TYPES[name]):
                        fig.fail("violation", "serial", f"{name}: frame {frame!r}", chunks)
            parser.discard_partial()
            fig.outcomes[f"serial parser {name}"] += 1
        elif kind == "collector":
            name, chunks, block, require_ok = data
            outcome = _collect(name, chunks, block, require_ok)
            fig.outcomes[f"serial collector {name} -> {outcome}"] += 1
        else:
            name, op, answers, fail_after = data
            scripted.SCRIPTS["fuzz"] = scripted.Script(list(answers), fail_after)
            drv = DRIVERS[name]({"url": "scripted://fuzz", "baudrate": 9600},
                                DRIVER_SETTINGS[name], device=name, sleep=lambda s: None)
            try:
                result = getattr(drv, op)()
                if op == "power_state" and result not in POWER_STATES:
                    fig.fail("violation", "serial", f"{name}.power_state -> {result!r}",
                             answers)
                outcome = "answer"
            except DeviceError as e:
                outcome = type(e).__name__
            finally:
                drv.close()
            fig.outcomes[f"serial driver {op} -> {outcome}"] += 1
    except DeviceError as e:
        fig.outcomes[f"serial {kind} -> {type(e).__name__}"] += 1
    except Exception as e:
        fig.fail("exception", "serial", f"{kind} {data[0]}: {type(e).__name__}: {e}", data)


def _collect(name: str, chunks: list[bytes], block: bool, require_ok: bool) -> str:
    parser = xapi.XapiParser() if name == "xapi" else poly.PolyParser()
    collector: Any = (xapi.ReplyCollector(block=block, require_ok=require_ok) if name == "xapi"
                      else poly.CallInfoCollector())
    for chunk in chunks:
        for frame in parser.feed(chunk):
            got = collector.add(frame)
            if got is not None:
                if name == "xapi":
                    xapi.call_from_statuses(got.statuses)
                    xapi.power_from_standby(got.value("Standby State"))
                return "complete"
    return "incomplete"


SETTINGS_VALUES = st.recursive(CONFIG_VALUES, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)),
    max_leaves=8)


@st.composite
def driver_settings(draw: Callable[[Any], Any]) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(DRIVERS)))
    base = dict(DRIVER_SETTINGS[name])
    for _ in range(draw(st.integers(1, 3))):
        model = DRIVERS[name].Settings
        key = draw(st.one_of(st.sampled_from(sorted(model.model_fields)), st.text(max_size=10)))
        base[key] = draw(SETTINGS_VALUES)
    if draw(st.integers(0, 9)) == 0:
        return name, draw(st.one_of(NOT_DICT, st.text(max_size=10)))
    return name, base


def check_driver_settings(fig: Figures, name: str, value: Any) -> None:
    fig.tried["driver_settings"] += 1
    try:
        DRIVERS[name].validate_settings(value)
        fig.outcomes["driver_settings valid"] += 1
    except SettingsError as e:
        fig.outcomes["driver_settings -> SettingsError"] += 1
        if not e.problems or not all(p.startswith("settings") and ": " in p for p in e.problems):
            fig.fail("violation", "driver_settings", f"problems {e.problems!r}", value)
    except Exception as e:
        fig.fail("exception", "driver_settings", f"{name}: {type(e).__name__}: {e}", value)


# --------------------------------------------------------------------------- ts policy
def ts_observations(h: Harness, fig: Figures) -> None:
    """What the agent does today with a stale or far-future ``ts`` on a well-formed command."""
    for label, ts in [("1970", "1970-01-01T00:00:00Z"), ("year 9999", "9999-12-31T23:59:59Z")]:
        h.fresh += 1
        for name, args in [("request_state", {}), ("power", {"on": False})]:
            h.fresh += 1
            cid = f"ts-{h.fresh}"
            h.replies.clear()
            before = h.fingerprint()
            h.agent.handle(Incoming("command", _dumps({"id": cid, "name": name, "args": args,
                                                       "ts": ts})))
            h.ack_events()
            status = json.loads(h.replies[0][0])["status"] if h.replies else "no reply"
            fig.outcomes[f"ts {label} on {name} -> {status}"] += 1
            if before != h.fingerprint():
                fig.fail("state", "command", f"ts {label} on {name} changed the room", ts)
            h.handled.append(cid)
    # A far-future ts is taken as proof of the time: what would an unsynchronised room do?
    st_now = h.agent.state
    unsynced = replace(st_now, clock_synced=False, locked_by=None)
    fresh = replace(unsynced, evidence=0.0)
    if core.lock_window(h.agent.settings, fresh, h.now) is not None and \
            core.lock_window(h.agent.settings, unsynced, h.now) is None:
        fig.notes.append(
            "a command with ts year 9999 (even one the room refused) raises the time evidence "
            "to 9999: an unsynchronised room would then never lock or power up for a window "
            "until restarted (see recommendation in bench/README.md)")


# --------------------------------------------------------------------------- campaign
@contextmanager
def _timed(fig: Figures, target: str) -> Iterator[None]:
    t = time.perf_counter()
    try:
        yield
    finally:
        fig.seconds[target] += time.perf_counter() - t


def run_campaign(examples: int, seed: int | None = None, log: Callable[[str], None] | None = None
                 ) -> Figures:
    """Run every target with ``examples`` generated inputs each, plus the explicit cases."""
    fig = Figures()
    say = log or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="dc-bad-") as tmp:
        h = Harness(Path(tmp) / "state")
        try:
            corr = st.one_of(st.none(), st.binary(max_size=64))
            with _timed(fig, "command"):
                for label, cat, raw in explicit_commands(h.site):
                    check_command(h, fig, cat if cat != "json" else "explicit", raw, b"c1",
                                  label)
                _run_given(st.tuples(COMMAND_INPUTS, corr),
                           lambda x: check_command(h, fig, x[0][0], x[0][1], x[1]),
                           examples, seed)
                ts_observations(h, fig)
            say(f"command: {fig.tried['command']} inputs")
            with _timed(fig, "schedule"):
                for label, cat, raw in explicit_schedules():
                    check_schedule(h, fig, "explicit" if cat == "json" else cat, raw, label)
                _run_given(SCHEDULE_INPUTS, lambda x: check_schedule(h, fig, x[0], x[1]),
                           examples, seed)
            say(f"schedule: {fig.tried['schedule']} inputs")
            if not h.agent.started.is_set():
                fig.fail("violation", "agent", "agent not started", None)
            h.replies.clear()   # still alive: a valid command is carried out normally
            h.agent.handle(Incoming("command", _dumps({"id": "alive", "name": "request_state"})))
            if not h.replies or json.loads(h.replies[0][0])["status"] != "accepted":
                fig.fail("violation", "agent", "agent does not answer a valid command", None)
        finally:
            h.close()
    with _timed(fig, "config"):
        for label, kind, text in explicit_configs():
            check_config(fig, kind, text, label)
        _run_given(config_text(), lambda x: check_config(fig, x[0], x[1]), examples, seed)
    say(f"config: {fig.tried['config']} inputs")
    with _timed(fig, "serial"):
        _run_given(serial_input(), lambda x: check_serial(fig, x[0], x[1]), examples, seed)
    say(f"serial: {fig.tried['serial']} inputs")
    with _timed(fig, "driver_settings"):
        _run_given(driver_settings(), lambda x: check_driver_settings(fig, x[0], x[1]),
                   examples, seed)
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=1000, help="generated inputs per target")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    fig = run_campaign(args.examples, args.seed, log=lambda m: print(m, file=sys.stderr))
    wall = time.perf_counter() - t
    print(f"bad-input campaign: --examples {args.examples} --seed {args.seed}")
    print(fig.table())
    print(f"\n{fig.total} inputs in {wall:.1f} s ({fig.total / wall:.0f} inputs/s)")
    return 0 if fig.ok else 1


if __name__ == "__main__":
    sys.exit(main())
