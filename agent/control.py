"""The local control socket: ``diemcau-agent status|on|off`` on the room's own Pi.

A Unix socket in the state directory (mode 0660: the agent's user and group). One JSON line
in, one JSON line out. A local ``off`` is a local request like a button hold: refused while a
window locks the room.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OPS = ("status", "on", "off", "press", "hold", "unplug", "replug", "silence", "speak",
       "garbage", "clock", "sync")
"""``press``/``hold`` (the button) and ``unplug|replug|silence|speak|garbage:<device>`` (a
serial device's emulator) work only in a simulated room."""


class ControlServer:
    """Accepts local requests and hands each to ``submit(op, respond)`` (the agent's queue)."""

    def __init__(self, path: Path,
                 submit: Callable[[str, Callable[[dict[str, Any]], None]], None]) -> None:
        self.path = Path(path)
        self._submit = submit
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self._sock.listen(4)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                line = conn.makefile("rb").readline(4096)
                req = json.loads(line)
                op = req.get("op") if isinstance(req, dict) else None
            except (OSError, ValueError):
                op = None
            if not isinstance(op, str) or op.split(":", 1)[0] not in OPS:
                self._send(conn, {"ok": False, "error": f"expected one of {', '.join(OPS)}"})
                return
            done = threading.Event()
            answer: dict[str, Any] = {}

            def respond(reply: dict[str, Any]) -> None:
                answer.update(reply)
                done.set()

            self._submit(op, respond)
            if not done.wait(10):
                answer = {"ok": False, "error": "the agent did not answer in 10 s"}
            self._send(conn, answer)

    @staticmethod
    def _send(conn: socket.socket, reply: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(reply, ensure_ascii=False).encode() + b"\n")


def request(path: Path, op: str, timeout: float = 15.0) -> dict[str, Any]:
    """Send one request to a running agent; raises ``OSError`` if none listens at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps({"op": op}).encode() + b"\n")
        data = s.makefile("rb").readline()
    reply = json.loads(data)
    return reply if isinstance(reply, dict) else {"ok": False, "error": "bad reply"}
