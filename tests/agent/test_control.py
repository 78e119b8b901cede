"""The local control socket stays up whatever its clients do and whatever the kernel says:
an accept that fails (out of file descriptors) is logged and retried, garbage gets a clear
error, a client that hangs up or says nothing costs nothing, and a failing handler is an
error reply, never a dead server."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.control import ControlServer, request


def echo(op: str, respond: Callable[[dict[str, Any]], None]) -> None:
    respond({"ok": True, "op": op})


@pytest.fixture
def server(short_tmp: Path) -> Iterator[ControlServer]:
    srv = ControlServer(short_tmp / "control.sock", echo, client_timeout_s=0.5, max_clients=3)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


def raw(path: Path, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` as it is and return everything the server answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return s.makefile("rb").read()


@pytest.mark.parametrize("garbage", [
    b"\xff\xfe\x00 not utf-8\n",
    b"not json at all\n",
    b"[1, 2, 3]\n",
    b'{"op": 5}\n',
    b'{"op": "reboot-the-pi"}\n',
    b"[" * 4000 + b"\n",               # nested past json's recursion limit
    b"",                                # connects and says nothing
])
def test_garbage_gets_a_clear_error_and_the_server_goes_on(server: ControlServer,
                                                           garbage: bytes) -> None:
    reply = json.loads(raw(server.path, garbage))
    assert reply["ok"] is False and "expected one of" in reply["error"]
    assert request(server.path, "status") == {"ok": True, "op": "status"}


def test_an_overlong_request_gets_an_error_or_nothing(server: ControlServer) -> None:
    """No newline in the first 4 KiB: an error line, or a reset if the server hangs up on
    the unread rest first; either way the server goes on."""
    try:
        answer = raw(server.path, b"x" * 100_000)
    except ConnectionError:  # reset, or a broken pipe while still sending
        answer = b""
    if answer:
        assert json.loads(answer)["ok"] is False
    assert request(server.path, "status") == {"ok": True, "op": "status"}


def test_a_client_that_hangs_up_costs_nothing(server: ControlServer) -> None:
    for _ in range(10):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(server.path))
    # While the server is still closing those (a loaded machine), "busy, try again" is the
    # designed answer; once they are closed they must have cost nothing.
    deadline = time.monotonic() + 10
    reply = request(server.path, "status")
    while reply.get("error", "").startswith("busy") and time.monotonic() < deadline:
        reply = request(server.path, "status")
    assert reply == {"ok": True, "op": "status"}


def test_silent_clients_time_out_and_do_not_block_others(server: ControlServer) -> None:
    silent = []
    for _ in range(2):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(server.path))
        silent.append(s)
    try:
        assert request(server.path, "status", timeout=2) == {"ok": True, "op": "status"}
        for s in silent:  # each is told why, after the client timeout, and hung up on
            s.settimeout(5)
            assert json.loads(s.makefile("rb").readline())["ok"] is False
    finally:
        for s in silent:
            s.close()


def test_too_many_clients_at_once_are_told_busy(server: ControlServer) -> None:
    silent = []
    try:
        for _ in range(3):  # max_clients: every handler taken by a client saying nothing
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(server.path))
            silent.append(s)
        deadline = time.monotonic() + 5
        while True:  # the server may not have accepted all three yet
            reply = request(server.path, "status", timeout=2)
            if reply.get("error", "").startswith("busy") or time.monotonic() > deadline:
                break
        assert reply["ok"] is False and reply["error"].startswith("busy")
    finally:
        for s in silent:
            s.close()
    deadline = time.monotonic() + 5
    while (reply := request(server.path, "status")) != {"ok": True, "op": "status"}:
        assert time.monotonic() < deadline, reply  # free again once the silent ones are gone


def test_a_failing_handler_is_an_error_reply_not_a_dead_server(short_tmp: Path) -> None:
    calls = []

    def broken(op: str, respond: Callable[[dict[str, Any]], None]) -> None:
        calls.append(op)
        if len(calls) == 1:
            raise RuntimeError("handler bug")
        respond({"ok": True})

    srv = ControlServer(short_tmp / "c.sock", broken)
    srv.start()
    try:
        reply = request(srv.path, "status")
        assert reply["ok"] is False and "handler bug" in reply["error"]
        assert request(srv.path, "status") == {"ok": True}
    finally:
        srv.close()


SERVER = textwrap.dedent("""\
    import logging, os, resource, sys
    from agent.control import ControlServer
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    srv = ControlServer(sys.argv[1], lambda op, respond: respond({"ok": True, "op": op}))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    fillers = []
    try:
        while True:
            fillers.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    srv.start()  # its first accept finds no descriptor free
    print("full", flush=True)
    sys.stdin.readline()
    for fd in fillers:
        os.close(fd)
    print("freed", flush=True)
    sys.stdin.readline()
""")


def read_line_until(stream: Any, want: str, timeout: float) -> str:
    """Lines from ``stream`` until one contains ``want``; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no line with {want!r} in {timeout}s"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            line = stream.readline().decode()
            assert line, f"stream ended before a line with {want!r}"
            if want in line:
                return line


def test_accept_out_of_file_descriptors_is_logged_and_the_server_goes_on(
        short_tmp: Path) -> None:
    path = short_tmp / "c.sock"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        read_line_until(proc.stdout, "full", 10)
        result: dict[str, Any] = {}

        def client() -> None:  # queued in the backlog while the server has no descriptor
            result.update(request(path, "status", timeout=10))

        t = threading.Thread(target=client)
        t.start()
        line = read_line_until(proc.stderr, "accept", 5)
        assert "ERROR" in line and "Too many open files" in line
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        t.join(10)
        assert result == {"ok": True, "op": "status"}
        read_line_until(proc.stderr, "accepting again", 5)
    finally:
        proc.kill()
        proc.wait()
