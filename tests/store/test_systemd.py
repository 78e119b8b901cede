"""sd_notify over a real AF_UNIX datagram socket; the watchdog with an injected clock."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import systemd
from agent.systemd import FailureRun, Watchdog


class Listener:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value
        sock.settimeout(5)

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def drain(self) -> list[str]:
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(5)
        return out


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        addr = str(tmp_path / "notify.sock")
        sock.bind(addr)
        env_value = addr
    else:
        name = f"diemcau-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        env_value = "@" + name
    monkeypatch.setenv("NOTIFY_SOCKET", env_value)
    try:
        yield Listener(sock, env_value)
    finally:
        sock.close()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_ready_status_stopping(listener: Listener) -> None:
    assert systemd.ready() is True
    assert listener.recv() == "READY=1"
    assert systemd.ready(status="room idle")
    assert listener.recv() == "READY=1\nSTATUS=room idle"
    assert systemd.status("two\nlines")
    assert listener.recv() == "STATUS=two lines"
    assert systemd.stopping()
    assert listener.recv() == "STOPPING=1"
    assert systemd.extend_timeout(2.5)
    assert listener.recv() == "EXTEND_TIMEOUT_USEC=2500000"


def test_not_under_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert systemd.notify("READY=1") is False


def test_dead_socket_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.notify("READY=1") is False


def env(listener: Listener, usec: int = 30_000_000, pid: int | None = None) -> dict[str, str]:
    e = {"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": str(usec)}
    if pid is not None:
        e["WATCHDOG_PID"] = str(pid)
    return e


def test_watchdog_from_env(listener: Listener) -> None:
    wd = Watchdog.from_env(environ=env(listener, pid=os.getpid()))
    assert wd.enabled and wd.interval == 15.0
    assert Watchdog.from_env(environ=env(listener)).enabled  # unset PID: this process
    assert not Watchdog.from_env(environ={"NOTIFY_SOCKET": listener.env_value}).enabled
    assert not Watchdog.from_env(environ={**env(listener), "WATCHDOG_USEC": "soon"}).enabled
    assert not Watchdog.from_env(environ={**env(listener), "WATCHDOG_USEC": "0"}).enabled


def test_watchdog_pid_mismatch_disables(listener: Listener) -> None:
    clock = FakeClock()
    wd = Watchdog.from_env(clock=clock, environ=env(listener, pid=os.getpid() + 1))
    assert not wd.enabled
    wd.loop_alive()
    assert wd.maybe_ping() is False
    assert listener.drain() == []


def test_watchdog_pings_only_when_loop_alive(listener: Listener) -> None:
    clock = FakeClock()
    wd = Watchdog.from_env(clock=clock, environ=env(listener))  # interval 15 s
    assert wd.maybe_ping() is False  # the loop has not said anything yet
    wd.loop_alive()
    assert wd.maybe_ping() is True
    assert listener.recv() == "WATCHDOG=1"
    wd.loop_alive()
    clock.t += 1
    assert wd.maybe_ping() is False  # rate limited to one per interval / 2
    clock.t += 6.5
    assert wd.maybe_ping() is True
    assert listener.recv() == "WATCHDOG=1"
    assert wd.pings == 2


def test_wedged_loop_gets_no_pings(listener: Listener) -> None:
    clock = FakeClock()
    wd = Watchdog.from_env(clock=clock, environ=env(listener))
    wd.loop_alive()
    assert wd.maybe_ping()
    listener.recv()
    # the main loop wedges: a watchdog thread keeps calling maybe_ping for 10 intervals
    for _ in range(40):
        clock.t += wd.interval / 4  # type: ignore[operator]
        assert wd.maybe_ping() is False
    assert listener.drain() == []
    assert wd.pings == 1
    wd.loop_alive()  # it recovers
    assert wd.maybe_ping() is True
    assert listener.recv() == "WATCHDOG=1"


def test_healthy_loop_is_never_late() -> None:
    """Loop alive every 0.7 s, pings checked every interval/2: gaps stay under WATCHDOG_USEC."""
    clock = FakeClock()
    sent: list[float] = []
    wd = Watchdog(15.0, clock=clock, send=lambda m: sent.append(clock.t) or True)
    next_alive = clock.t
    next_check = clock.t
    end = clock.t + 600
    while clock.t < end:
        clock.t = min(next_alive, next_check)
        if clock.t == next_alive:
            wd.loop_alive()
            next_alive += 0.7
        if clock.t == next_check:
            wd.maybe_ping()
            next_check += wd.interval / 2  # type: ignore[operator]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(sent) > 50 and max(gaps) <= 15.0 + 1e-9


def test_watchdog_thread_pings_through_real_socket(listener: Listener) -> None:
    wd = Watchdog.from_env(environ=env(listener, usec=40_000))  # 40 ms: interval 20 ms
    stop = threading.Event()
    wd.loop_alive()
    t = wd.start_thread(stop)
    assert t is not None
    try:
        assert listener.recv() == "WATCHDOG=1"  # waits up to 5 s for the thread
    finally:
        stop.set()
        t.join(timeout=5)
    assert not t.is_alive()
    assert Watchdog(None).start_thread(stop) is None


def test_reloading_carries_the_monotonic_time(listener: Listener) -> None:
    assert systemd.reloading("re-reading /etc/diemcau/site.yaml")
    msg = listener.recv().split("\n")
    assert msg[0] == "RELOADING=1" and msg[1].startswith("MONOTONIC_USEC=")
    assert abs(int(msg[1].split("=")[1]) / 1e6 - time.monotonic()) < 5
    assert msg[2] == "STATUS=re-reading /etc/diemcau/site.yaml"


def test_failure_run_by_count_by_time_and_reset() -> None:
    clock = FakeClock()
    run = FailureRun(max_failures=3, max_s=60, clock=clock)
    assert not run.exhausted
    assert run.failed() is False and run.failed() is False
    assert run.failed() is True and run.exhausted      # the third in a row
    assert run.failed() is False and run.exhausted      # said once
    assert run.succeeded() is True and not run.exhausted and run.count == 0
    # Slow turns: two failures a minute apart are a run too long.
    assert run.failed() is False
    clock.t += 59
    assert run.failed() is False
    clock.t += 1
    assert run.exhausted and run.seconds == 60          # the loop stops feeding the watchdog
    assert run.failed() is True                          # and the next failure says why
    run.succeeded()
    assert run.seconds == 0 and run.failed() is False
