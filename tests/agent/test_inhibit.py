"""The logind shutdown inhibitor is held exactly while the room is locked (a stand-in
``systemd-inhibit`` records how it was called: this machine has no systemd as PID 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.core.events import Command, ScheduleReceived, Tick, Window
from agent.hardware.pins import mock_factory
from agent.inhibit import ShutdownInhibitor
from agent.runtime import Agent
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import site_config


def fake_inhibit(tmp: Path) -> tuple[Path, Path]:
    record = tmp / "inhibit-args"
    script = tmp / "systemd-inhibit"
    script.write_text(f'#!/bin/sh\necho "$@" >> {record}\nexec sleep 600\n')
    script.chmod(0o755)
    return script, record


def wait_for(path: Path, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.01)
    return path.read_text()


def test_held_while_locked_released_after(tmp_path: Path, broker: LocalBroker) -> None:
    script, record = fake_inhibit(tmp_path)
    agent = Agent(site_config(broker), mock_factory(), StateDir(tmp_path / "st"),
                  connect=False)
    agent.inhibitor = ShutdownInhibitor(binary=str(script), enabled=True)
    agent.start()
    try:
        assert not agent.inhibitor.held
        now = time.time()
        agent.feed(ScheduleReceived((Window("s1", "session", now + 60, now + 3600, "Họp"),),
                                    "v1"))
        assert agent.inhibitor.held
        args = wait_for(record)
        assert "--mode=block" in args and "--what=shutdown:sleep:handle-power-key" in args
        assert "--why=session s1 Họp" in args
        agent.feed(Tick())
        assert len(record.read_text().splitlines()) == 1   # still the same inhibitor
        agent.feed(Command("c", "complete_window", {"window_id": "s1"}))
        assert not agent.inhibitor.held
    finally:
        agent.close()


def test_no_systemd_means_nothing_to_hold() -> None:
    inh = ShutdownInhibitor(binary="/nonexistent/systemd-inhibit", enabled=False)
    assert inh.hold("session s1") is False and not inh.held
    inh.release()


def test_a_refused_inhibitor_is_noticed_not_respawned_in_a_loop(tmp_path: Path) -> None:
    script = tmp_path / "systemd-inhibit"
    calls = tmp_path / "calls"
    script.write_text(f'#!/bin/sh\necho x >> {calls}\n'
                      'echo "Failed to inhibit: Access denied" >&2\nexit 1\n')
    script.chmod(0o755)
    inh = ShutdownInhibitor(binary=str(script), enabled=True)
    inh.hold("session s1")
    assert inh._proc is not None
    inh._proc.wait(5)                      # logind said no
    assert inh.hold("session s1") is False
    assert inh.failure is not None and "Access denied" in inh.failure
    for _ in range(5):
        assert inh.hold("session s1") is False
    assert wait_for(calls).count("x") == 1  # not started again on every pass of the loop


def stand_in(tmp: Path, before_exec: str = "") -> Path:
    """A ``systemd-inhibit`` that runs the command after its options, as the real one does."""
    script = tmp / "systemd-inhibit"
    script.write_text('#!/bin/sh\n'
                      'while [ $# -gt 0 ]; do case "$1" in --*) shift;; *) break;; esac; done\n'
                      f'{before_exec}\nexec "$@"\n')
    script.chmod(0o755)
    return script


def gone(pid: int, timeout: float) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_release_returns_at_once_even_if_the_child_ignores_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "systemd-inhibit"
    trapped = tmp_path / "trapped"
    script.write_text(f"#!/bin/sh\ntrap '' TERM\necho yes > {trapped}\nexec sleep 600\n")
    script.chmod(0o755)
    inh = ShutdownInhibitor(binary=str(script), enabled=True)
    inh.KILL_AFTER_S = 0.5
    assert inh.hold("session s1")
    assert inh._proc is not None
    pid = inh._proc.pid
    wait_for(trapped)  # SIGTERM is ignored from here on
    t0 = time.monotonic()
    inh.release()
    assert time.monotonic() - t0 < 0.2, "release() waited on the child"
    assert not inh.held
    assert gone(pid, 5), "the stubborn child was never killed"


def test_child_has_its_own_process_group(tmp_path: Path) -> None:
    inh = ShutdownInhibitor(binary=str(stand_in(tmp_path)), enabled=True)
    assert inh.hold("session s1") and inh._proc is not None
    try:
        assert os.getpgid(inh._proc.pid) == inh._proc.pid
    finally:
        inh.release()


def test_the_inhibitor_dies_with_the_agent(tmp_path: Path) -> None:
    """kill -9 of the agent: the held lock must not outlive it (the child sees its stdin end)."""
    script = stand_in(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from agent.inhibit import ShutdownInhibitor\n"
         f"inh = ShutdownInhibitor(binary={str(script)!r}, enabled=True)\n"
         "assert inh.hold('session s1')\n"
         "print(inh._proc.pid, flush=True)\n"
         "time.sleep(600)\n"],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        child = int(holder.stdout.readline())
        assert not gone(child, 0.3)          # held while the agent lives
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        assert gone(child, 5), "the inhibitor outlived the agent"
    finally:
        holder.kill()
        holder.wait()
