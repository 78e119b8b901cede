"""The local control socket: ``diemcau-agent status|on|off`` on the room's own Pi.

A Unix socket in the state directory (mode 0660: the agent's user and group). One JSON line
in, one JSON line out. A local ``off`` is a local request like a button hold: refused while a
window locks the room.

The server outlives its clients and the kernel's bad moments: an ``accept`` that fails (out of
file descriptors, a connection aborted in the backlog) is logged once and retried; garbage,
an overlong line or a client that says nothing within ``client_timeout_s`` gets an error line;
a client that hangs up costs nothing; a handler that raises is an error reply. At most
``max_clients`` requests are served at once, the next ones are told the agent is busy.
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

OPS = ("status", "on", "off", "help", "selftest", "press", "hold", "unplug", "replug",
       "silence", "speak", "garbage", "clock", "sync")
"""``press``/``hold`` (the button) and ``unplug|replug|silence|speak|garbage:<device>`` (a
serial device's emulator) work only in a simulated room. ``selftest`` is answered when the
test ends (see ``ControlServer``'s ``answer_within``)."""

ANSWER_S = 10.0
"""How long a request waits for the agent's answer, unless ``answer_within`` says more."""

ACCEPT_RETRY_S = 0.1
"""Pause after a failed ``accept`` (EMFILE would otherwise spin: the client stays queued)."""


class ControlServer:
    """Accepts local requests and hands each to ``submit(op, respond)`` (the agent's queue).

    ``answer_within`` gives an op a longer wait for its answer than :data:`ANSWER_S` (a
    self-test takes minutes). Every error reply carries a ``code`` the command line words in
    the operator's language: ``busy``, ``bad_request``, ``no_answer``, ``internal``."""

    def __init__(self, path: Path,
                 submit: Callable[[str, Callable[[dict[str, Any]], None]], None],
                 client_timeout_s: float = 10.0, max_clients: int = 8,
                 answer_within: dict[str, float] | None = None) -> None:
        self.path = Path(path)
        self._submit = submit
        self._timeout = client_timeout_s
        self._answer_within = dict(answer_within or {})
        self._slots = threading.BoundedSemaphore(max_clients)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self._sock.listen(16)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and remove the socket file."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        failures = 0
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError as e:
                if self._closed.is_set():
                    return
                if failures == 0:
                    log.error("control socket %s: accept failed (%s); still listening",
                              self.path, e)
                failures += 1
                self._closed.wait(ACCEPT_RETRY_S)
                continue
            if failures:
                log.info("control socket %s accepting again after %d failed accept(s)",
                         self.path, failures)
                failures = 0
            try:
                self._dispatch(conn)
            except Exception:  # pragma: no cover - never let one client end the server
                log.exception("control socket: cannot serve a client")
                conn.close()

    def _dispatch(self, conn: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(conn, "busy: too many local requests at once, try again", "busy")
            return
        try:
            threading.Thread(target=self._one, args=(conn,), name="control-client",
                             daemon=True).start()
        except RuntimeError as e:  # "can't start new thread"
            self._slots.release()
            log.error("control socket: cannot start a handler: %s", e)
            self._refuse(conn, f"busy: {e}", "busy")

    def _refuse(self, conn: socket.socket, error: str, code: str) -> None:
        with conn:
            conn.settimeout(1)
            self._send(conn, {"ok": False, "error": error, "code": code})

    def _one(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(self._timeout)
                self._send(conn, self._answer(conn))
        except Exception:  # pragma: no cover - _answer catches what a handler raises
            log.exception("control socket: request failed")
        finally:
            self._slots.release()

    def _answer(self, conn: socket.socket) -> dict[str, Any]:
        try:
            line = conn.makefile("rb").readline(4096)
            req = json.loads(line)
            op = req.get("op") if isinstance(req, dict) else None
        except (OSError, ValueError, RecursionError):
            op = None
        if not isinstance(op, str) or op.split(":", 1)[0] not in OPS:
            return {"ok": False, "error": f"expected one of {', '.join(OPS)}",
                    "code": "bad_request"}
        done = threading.Event()
        answer: dict[str, Any] = {}

        def respond(reply: dict[str, Any]) -> None:
            answer.update(reply)
            done.set()

        try:
            self._submit(op, respond)
        except Exception as e:
            log.exception("control request %r failed", op)
            return {"ok": False, "error": f"internal error: {e}", "code": "internal"}
        wait = self._answer_within.get(op, ANSWER_S)
        if not done.wait(wait):
            return {"ok": False, "error": f"the agent did not answer in {wait:g} s",
                    "code": "no_answer"}
        return answer

    @staticmethod
    def _send(conn: socket.socket, reply: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(reply, ensure_ascii=False).encode() + b"\n")



def request(path: Path, op: str, timeout: float = 15.0) -> dict[str, Any]:
    """Send one request to a running agent; raises ``OSError`` if none listens at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        # A busy server answers and hangs up before reading: its answer is still there.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(json.dumps({"op": op}).encode() + b"\n")
        data = s.makefile("rb").readline()
    if not data:
        raise ConnectionError(f"{path}: the agent hung up without an answer")
    reply = json.loads(data)
    return reply if isinstance(reply, dict) else {"ok": False, "error": "bad reply"}
