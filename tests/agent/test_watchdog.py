"""The agent's main loop feeds systemd's watchdog only while it comes round: a wedged handler
stops the pings (seen on a real notify socket), and they resume when it is free again."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.hardware.pins import mock_factory
from agent.runtime import Agent, LocalCall, Stop
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import site_config


def next_message(sock: socket.socket, timeout: float) -> bytes | None:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096)
    except TimeoutError:
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
