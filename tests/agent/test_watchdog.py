"""The agent's main loop feeds systemd's watchdog only while it comes round: a wedged handler
stops the pings (seen on a real notify socket), and they resume when it is free again."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent import runtime
from agent.core.events import ScheduleReceived, Window
from agent.hardware.pins import mock_factory
from agent.runtime import Agent, LocalCall, Stop
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import offline_config, site_config


def next_message(sock: socket.socket, timeout: float) -> bytes | None:
    """The next notification other than a ``STATUS=`` line (those follow the room's state,
    not the loop), or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            msg = sock.recv(4096)
        except TimeoutError:
            return None
        if not msg.startswith(b"STATUS="):
            return msg
    return None


def test_wedged_loop_stops_watchdog_pings(short_tmp: Path, broker: LocalBroker,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = short_tmp / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")    # 1 s: ping at least every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    agent = Agent(site_config(broker), mock_factory(), StateDir(short_tmp / "st"), connect=False)
    agent.start()
    loop = threading.Thread(target=agent.run, daemon=True)
    loop.start()
    try:
        assert next_message(sock, 3) == b"WATCHDOG=1"
        release = threading.Event()
        wedged = threading.Event()

        def stuck(reply: dict[str, Any]) -> None:
            wedged.set()
            release.wait(30)

        agent.queue.put(LocalCall("status", stuck))
        assert wedged.wait(5)
        # Drain pings sent before the handler wedged.
        while next_message(sock, 0.6) is not None:
            pass
        # Two whole watchdog periods without a single ping: systemd would restart the agent.
        assert next_message(sock, 2.0) is None
        release.set()
        assert next_message(sock, 3) == b"WATCHDOG=1"
    finally:
        agent.queue.put(Stop())
        loop.join(10)
        agent.close()
        sock.close()


def test_a_loop_that_fails_every_turn_stops_the_pings_and_says_why(
        short_tmp: Path, broker: LocalBroker, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Coming round is not enough: a failure on every turn (here the clock itself) must end
    in a restart, not in a room frozen behind log lines; a good turn makes it whole again."""
    path = short_tmp / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setattr(runtime, "LOOP_MAX_FAILURES", 6)
    broken = threading.Event()

    def clock() -> float:
        if broken.is_set():
            raise OSError("clock source gone")
        return time.time()

    agent = Agent(site_config(broker), mock_factory(), StateDir(short_tmp / "st"),
                  connect=False, clock=clock)
    agent.start()
    loop = threading.Thread(target=agent.run, daemon=True)
    loop.start()
    try:
        assert next_message(sock, 3) == b"WATCHDOG=1"
        with caplog.at_level(logging.ERROR):
            broken.set()
            deadline = time.monotonic() + 15
            while not any("loop_failing" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "never said the loop keeps failing"
                next_message(sock, 0.1)
        said = next(r for r in caplog.records if "loop_failing" in r.getMessage())
        assert said.levelno == logging.ERROR
        assert "6 time(s) in a row" in said.getMessage()
        assert "clock source gone" in said.getMessage() and "restart" in said.getMessage()
        while next_message(sock, 0.6) is not None:   # a ping already on its way
            pass
        assert next_message(sock, 2.0) is None       # two watchdog periods: systemd restarts
        broken.clear()                               # it recovers before systemd acts
        assert next_message(sock, 3) == b"WATCHDOG=1"
    finally:
        broken.clear()
        agent.queue.put(Stop())
        loop.join(10)
        agent.close()
        sock.close()


def test_systemd_status_line_follows_the_lock(short_tmp: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    path = short_tmp / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    t0 = 1_800_000_000.0
    agent = Agent(offline_config(lead_min=1), mock_factory(), StateDir(short_tmp / "st"),
                  connect=False, clock=lambda: t0, clock_synced=lambda: True)
    agent.start()
    agent.feed(ScheduleReceived((Window("t1", "test", t0 + 30, t0 + 600, "Kiểm tra"),), "v1"))
    lines = []
    sock.settimeout(3)
    while not any(b"LOCKED" in m for m in lines):
        lines.append(sock.recv(4096))
    assert lines[-1].startswith(b"STATUS=LOCKED by test t1") and "Kiểm tra".encode() in lines[-1]
    agent.close()
