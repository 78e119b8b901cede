"""The room simulator against the real room agent: the same scripted window through both
(schedule, lock and power-up, ``window_ready``, an operator check answered at the button, a
refused switch-off, the completion, the switch-off after the window), recorded by the real
console over a real Mosquitto; the event kinds each room recorded, in order, must be the same.

The real agent must speak contract 2.0 (``diemcau/v2``). The ``v2_agent`` fixture finds it in
this checkout, or in the checkout named by ``DIEMCAU_AGENT_SOURCE`` (a branch where the 2.0
link has landed); while neither has it, the comparison is an expected failure that says so,
and the harness itself is still proven on two simulator processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from bench.scale import SimProcess
from broker.local import LocalBroker
from district.config import parse_config
from district.model import Actor
from district.recorder import Recorder
from district.service import Console
from district.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
LEAD_S = 60.0
OFF_AFTER_S = 6.0
TIMEOUT = 60.0

COMPARED = ("schedule_applied", "lock_engaged", "window_power_up", "power_sequence_started",
            "power_step", "power_sequence_finished", "window_ready",
            "operator_check_requested", "operator_check_acknowledged", "check_in",
            "shutdown_refused", "window_completed", "lock_released", "after_window_power_off",
            "power_sequence_cancelled")
"""The decisions a scripted window makes (shell and device-health events are each side's own
business: serial emulators report health, the simulator has none)."""


class Room(Protocol):
    site: str

    def press(self) -> None: ...
    def hold(self) -> None: ...
    def close(self) -> None: ...


class SimRoom:
    """One room of ``bench/roomsim.py`` (its own process)."""

    def __init__(self, port: int, prefix: str, log: Path) -> None:
        self.site = f"{prefix}-00001"
        self.proc = SimProcess(port, prefix, 1, 1, [
            "--lead-s", str(LEAD_S), "--off-after-release-s", str(OFF_AFTER_S),
            "--answer", "0", "--checkin", "0", "--refuse", "0"], log)

    def press(self) -> None:
        self.proc.ctl("press")

    def hold(self) -> None:
        self.proc.ctl("hold")

    def close(self) -> None:
        self.proc.close()


AGENT_SITE = """\
site: {{id: {site}, name: "Xã So sánh"}}
broker: {{host: 127.0.0.1, port: {port}, keepalive_s: 5}}
devices:
  codec: {{role: codec, relay: {{pin: 26}}, order: 1, off_grace_s: 1, ready_timeout_s: 5,
          driver: cisco_xapi, serial: {{url: /dev/codec}}, poll_s: 1,
          simulation: {{boot_s: 0.3}}}}
  camera: {{role: camera, relay: {{pin: 20}}, order: 2, off_grace_s: 1, ready_timeout_s: 5,
           driver: sony_visca, serial: {{url: /dev/camera}}, poll_s: 1,
           simulation: {{boot_s: 0.2}}}}
  amplifier: {{role: amplifier, relay: {{pin: 21}}, order: 3}}
status_led: {{kind: rgb, pins: {{red: 17, green: 27, blue: 22}}}}
button: {{pin: 16, hold_s: 0.5, bounce_s: 0}}
timing: {{lead_min: {lead_min}, lock_hard_cap_min: 60, off_after_release_min: {off_min}}}
support:
  - {{name: "Tổ kỹ thuật", role: "Hỗ trợ", phone: "+84 205 3830 000"}}
"""


class AgentRoom:
    """The real room agent, ``python -m agent run --simulate`` (mock pins, emulated serial
    devices), driven at its button through its control socket."""

    def __init__(self, source: Path, port: int, site: str, workdir: Path) -> None:
        self.site = site
        self.state = workdir / "agent-state"
        cfg = workdir / "site.yaml"
        cfg.write_text(AGENT_SITE.format(site=site, port=port, lead_min=LEAD_S / 60,
                                         off_min=OFF_AFTER_S / 60))
        self.log = (workdir / "agent.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(source)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(cfg), "--simulate",
             "--broker", f"mqtt://127.0.0.1:{port}", "--state-dir", str(self.state)],
            cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def _request(self, op: str) -> None:
        from agent.control import request

        deadline = time.monotonic() + 20
        while True:
            try:
                reply = request(self.state / "agent.sock", op, timeout=10)
                assert reply.get("ok", True) is not False, reply
                return
            except OSError:
                assert time.monotonic() < deadline, "the agent's control socket"
                time.sleep(0.1)

    def press(self) -> None:
        self._request("press")

    def hold(self) -> None:
        self._request("hold")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        sys.stderr.write(Path(self.log.name).read_text(errors="replace")[-3000:])


def speaks_v2(source: Path) -> bool:
    """Whether the room agent in ``source`` speaks contract 2.0 (its default topic prefix)."""
    try:
        text = (source / "agent" / "config.py").read_text()
    except OSError:
        return False
    return 'Field("diemcau/v2"' in text


@pytest.fixture
def v2_agent() -> Path:
    """A checkout whose room agent speaks contract 2.0: this one, or ``DIEMCAU_AGENT_SOURCE``."""
    source = Path(os.environ.get("DIEMCAU_AGENT_SOURCE", ROOT))
    assert speaks_v2(source), f"the room agent in {source} does not speak contract 2.0"
    return source


class Rig:
    """A console (SQLite, the real clock) recording two rooms on a real Mosquitto."""

    def __init__(self, broker: LocalBroker, tmp: Path, sites: list[str]) -> None:
        rooms = "\n".join(f"  - {{id: {s}, name: 'Xã {s}'}}" for s in sites)
        self.cfg = parse_config(
            "organisation: {name: {vi: So sánh}, level: {vi: tỉnh}}\n"
            f"broker: {{url: 'mqtt://127.0.0.1:{broker.port}', keepalive_s: 5}}\n"
            f"database: {{path: '{tmp / 'c.db'}'}}\nrooms:\n{rooms}\n")
        self.store = SqliteStore(tmp / "c.db")
        self.console = Console(self.cfg, self.store)
        self._cv = threading.Condition()
        self.console.subscribe(lambda _ch: self._notify())
        self.recorder = Recorder(self.cfg, self.console)
        self.recorder.start()
        assert self.recorder.connected.wait(TIMEOUT)

    def _notify(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def wait(self, pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        with self._cv:
            ok = self._cv.wait_for(pred, timeout)
        assert ok, f"timed out: {what}; recorded: " + "; ".join(
            f"{s}: {self.kinds(s)}" for s in self.cfg.room_ids())

    def kinds(self, site: str) -> list[str]:
        return [e.kind for e in sorted(self.store.events(site), key=lambda e: e.seq)]

    def has(self, site: str, kind: str, n: int = 1) -> bool:
        return self.kinds(site).count(kind) >= n

    def close(self) -> None:
        self.recorder.stop()
        self.store.close()


def play(rig: Rig, rooms: list[Room]) -> dict[str, list[str]]:
    """The scripted window through every room at once; each room's compared kinds from its
    schedule on."""
    sites = [r.site for r in rooms]
    actor = Actor("so-sanh")
    for s in sites:
        rig.wait(lambda s=s: rig.store.live(s).availability == "online", f"{s} online")
    # The same start for all: everything off (a simulated agent's mock pins start on).
    rig.console.power(actor, sites, False)
    for s in sites:
        rig.wait(lambda s=s: (rig.store.live(s).state or {}).get("power") == "off", f"{s} off")
    start = time.time() + 15
    w = rig.console.create_window(actor, kind="test", title="So sánh", start=start,
                                  end=start + 600, rooms=sites)
    for s in sites:
        rig.wait(lambda s=s: rig.has(s, "power_sequence_finished"), f"{s} powered up")
    for s in sites:
        rig.wait(lambda s=s: rig.has(s, "window_ready"), f"{s} ready", timeout=40)
    rig.console.operator_check(actor, sites, window_id=w.id, timeout_s=60)
    for s in sites:
        rig.wait(lambda s=s: rig.has(s, "operator_check_requested"), f"{s} check")
    for r in rooms:
        r.press()
    for s in sites:
        rig.wait(lambda s=s: rig.has(s, "check_in"), f"{s} pressed")
    for r in rooms:
        r.hold()
    for s in sites:
        rig.wait(lambda s=s: rig.has(s, "shutdown_refused"), f"{s} refused")
    rig.console.complete_window(actor, w.id)
    for s in sites:
        rig.wait(lambda s=s: rig.has(s, "power_sequence_finished", 2), f"{s} switched off",
                 timeout=OFF_AFTER_S + 40)
    for s in sites:  # the schedule with the completion, applied
        rig.wait(lambda s=s: rig.has(s, "schedule_applied", 2), f"{s} new schedule")
    out = {}
    for s in sites:
        kinds = rig.kinds(s)
        kinds = kinds[kinds.index("schedule_applied"):]  # the window, from its schedule on
        out[s] = [k for k in kinds if k in COMPARED]
    return out


def difference(a: list[str], b: list[str]) -> str | None:
    """Where two rooms' kinds first differ (None: the same)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"at {i}: {x} / {y} (before: {a[max(0, i - 3):i]})"
    if len(a) != len(b):
        return f"one is longer: {a[len(b):] or b[len(a):]}"
    return None


@pytest.fixture
def short_dir() -> Iterator[Path]:
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="dc-cmp-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_difference_finds_the_first_change() -> None:
    a = ["lock_engaged", "window_power_up", "window_ready"]
    assert difference(a, list(a)) is None
    assert difference(a, ["lock_engaged", "window_ready"]) == \
        "at 1: window_power_up / window_ready (before: ['lock_engaged'])"
    assert difference(a, a[:2]) == "one is longer: ['window_ready']"


def test_the_harness_on_two_simulators(broker: LocalBroker, short_dir: Path) -> None:
    rooms: list[Room] = [SimRoom(broker.port, "cmpa", short_dir / "a.log"),
                         SimRoom(broker.port, "cmpb", short_dir / "b.log")]
    rig = Rig(broker, short_dir, [r.site for r in rooms])
    try:
        got = play(rig, rooms)
    finally:
        for r in rooms:
            r.close()
        rig.close()
    a, b = got.values()
    assert difference(a, b) is None, difference(a, b)
    assert a[:4] == ["schedule_applied", "lock_engaged", "window_power_up",
                     "power_sequence_started"]
    for kind in ("window_ready", "operator_check_acknowledged", "check_in", "shutdown_refused",
                 "window_completed", "lock_released", "after_window_power_off"):
        assert kind in a, kind


def test_the_simulator_records_what_the_real_agent_records(
        v2_agent: Path, broker: LocalBroker, short_dir: Path) -> None:
    rooms: list[Room] = [SimRoom(broker.port, "cmp", short_dir / "sim.log"),
                         AgentRoom(v2_agent, broker.port, "cmp-agent", short_dir)]
    rig = Rig(broker, short_dir, [r.site for r in rooms])
    try:
        got = play(rig, rooms)
    finally:
        for r in rooms:
            r.close()
        rig.close()
    sim, agent = got["cmp-00001"], got["cmp-agent"]
    assert difference(sim, agent) is None, f"{difference(sim, agent)}\nsim:   {sim}\nagent: {agent}"
