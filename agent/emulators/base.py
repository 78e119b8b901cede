"""Device emulators on real pseudo-terminals.

Each emulator owns a pty pair, serves the device's protocol from a background thread and
keeps a stable symlink (``<link_dir>/ttyCODEC``) to the current ``/dev/pts/N``: pyserial opens
that path exactly as it opens ``/dev/serial/by-id/…``. When the "port vanishes" the pty is
closed and the link removed; when it "returns" a new pty appears behind the same link.

Behaviour a test can switch on from any thread: power (relay) off and on with a boot time on
an injectable clock, silence (unplugged cable), slow replies, replies split into pieces,
noise before replies or injected at once, noise over lines inside the next reply, error
replies for the next commands, the port vanishing and returning. Every command received is
logged with its reply.

Example::

    with CiscoEmulator(boot_s=30, clock=fake_clock) as emu:
        drv = CiscoXapi({"url": emu.url, "baudrate": 115200})
        emu.power(False); emu.power(True)   # relay cycle: silent while booting
"""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import queue
import select
import shutil
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Exchange:
    """One logged exchange: what arrived (empty for unsolicited output) and what was sent."""

    t: float
    received: bytes
    reply: bytes

    @property
    def command(self) -> str:
        """The received bytes as text, without line endings."""
        return self.received.decode("latin-1").strip("\r\n")

    @property
    def answer(self) -> str:
        """The reply as text."""
        return self.reply.decode("latin-1")


class Emulator:
    """Base emulator: pty, thread, faults and log. Subclasses speak a protocol.

    Subclass hooks: :meth:`split_commands`, :meth:`handle`, :meth:`error_reply`,
    :meth:`reset_state`, :meth:`on_power_up`, :meth:`on_booted`.
    """

    link_name = "ttyDEVICE"
    answers_while_booting = False       # True: handle() decides what a booting device says

    def __init__(self, *, boot_s: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 powered: bool = True, link_dir: str | Path | None = None,
                 link_name: str | None = None, reply_delay_s: float = 0.0,
                 split_replies: int | None = None, split_pause_s: float = 0.005,
                 garbage_prefix: bytes = b"") -> None:
        self.boot_s = boot_s
        self.clock = clock
        self.reply_delay_s = reply_delay_s
        self.split_replies = split_replies
        self.split_pause_s = split_pause_s
        self.garbage_prefix = garbage_prefix
        self.silent = False
        self.log: list[Exchange] = []
        self.errors: list[Exception] = []   # exceptions raised by handle(): tests check it
        self._powered = powered
        self._boot_until: float | None = None
        self._fail = 0
        self._refuse: set[bytes] = set()
        self._follow = b""
        self._garble: tuple[bytes | None, int, int, bytes] | None = None
        self._own_dir = link_dir is None
        self._link_dir = Path(link_dir) if link_dir else None
        if link_name:
            self.link_name = link_name
        self._master: int | None = None
        self._slave: int | None = None
        self._inbuf = bytearray()
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], list[Any],
                                             threading.Event]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._wake_r, self._wake_w = -1, -1

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        """Open the pty, make the link and start serving; returns self."""
        if self._thread is not None:
            return self
        if self._link_dir is None:
            self._link_dir = Path(tempfile.mkdtemp(prefix="diemcau-emu-"))
        self._link_dir.mkdir(parents=True, exist_ok=True)
        self._wake_r, self._wake_w = os.pipe()
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"emu-{self.link_name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the pty and remove the link; idempotent."""
        if self._thread is None:
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        self._thread = None
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._own_dir and self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)
            self._link_dir = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.url} powered={self._powered} "
                f"booting={self.booting} silent={self.silent}>")

    @property
    def url(self) -> str:
        """Stable path to open (a symlink to the current pts)."""
        assert self._link_dir is not None, "start() the emulator first"
        return str(self._link_dir / self.link_name)

    @property
    def pts_path(self) -> str | None:
        """The current ``/dev/pts/N``, or None while the port is gone."""
        return os.ttyname(self._slave) if self._slave is not None else None

    # ------------------------------------------------------------------ faults and power
    @property
    def powered(self) -> bool:
        """True while the (emulated) relay feeds the device."""
        return self._powered

    @property
    def booting(self) -> bool:
        """True while the device is powered but still starting up."""
        return (self._powered and self._boot_until is not None
                and self.clock() < self._boot_until)

    @property
    def plugged(self) -> bool:
        """False while the port has vanished."""
        return self._master is not None

    def power(self, on: bool) -> None:
        """Relay: off → silent and state lost; on → boots for ``boot_s`` then answers."""
        def do() -> None:
            if on == self._powered:
                return
            self._powered = on
            self.reset_state()
            if on:
                self._boot_until = self.clock() + self.boot_s
                self.on_power_up()
                self._tick()
            else:
                self._boot_until = None
        self.call(do)

    def unplug(self) -> None:
        """The port vanishes (USB adapter pulled): pty closed, link removed."""
        self.call(self._close_pty)

    def replug(self) -> None:
        """The port returns: a new pty behind the same link."""
        self.call(lambda: None if self._master is not None else self._open_pty())

    def inject_garbage(self, data: bytes = b"\x00\xfe\x13\x80noise\xff") -> None:
        """Write noise now, as a bad cable or a wrong baud rate would."""
        self.call(lambda: self._write(data))

    def fail_next(self, n: int = 1) -> None:
        """Answer the next ``n`` commands with the protocol's error reply."""
        def do() -> None:
            self._fail = n
        self.call(do)

    def follow_next_reply(self, data: bytes) -> None:
        """Send ``data`` (a notification) right behind the next reply, in the same write, as
        a device does when an event happens while it answers. Takes effect at once."""
        self._follow += data

    def garble_next_reply(self, command: bytes | None = None, first: int = 0,
                          last: int | None = None, junk: bytes = b"\x80\xfe\x00") -> None:
        """Noise over the next reply (to the command starting with ``command``, when given):
        its lines ``first``…``last`` (0-based, inclusive; default: line ``first`` only) arrive
        as one run of bytes with ``junk`` in the middle and their own line ends lost, as a
        burst of interference makes them. Binary protocols get ``junk`` in the middle of the
        reply instead. Takes effect at once."""
        self._garble = (command, first, first if last is None else last, junk)

    def garble(self, reply: bytes, first: int, last: int, junk: bytes) -> bytes:
        """``reply`` with lines ``first``…``last`` turned into one garbled line (see
        :meth:`garble_next_reply`); binary emulators override this."""
        parts = reply.splitlines(keepends=True)
        hit = b"".join(p.rstrip(b"\r\n") for p in parts[first:last + 1])
        mid = len(hit) // 2
        noisy = hit[:mid] + junk + hit[mid:] + b"\r\n"
        return b"".join(parts[:first]) + noisy + b"".join(parts[last + 1:])

    def refuse_next(self, command: bytes) -> None:
        """Answer the next receipt of exactly ``command`` with the error reply. Takes effect
        at once, even while the emulator thread is busy (say, delaying a reply)."""
        self._refuse = self._refuse | {bytes(command)}

    def send_unsolicited(self, data: bytes) -> None:
        """Send bytes the device emits on its own (notifications) and log them."""
        self.call(lambda: self._emit(b"", data))

    # ------------------------------------------------------------------ log
    def wait_for(self, predicate: Callable[[Exchange], bool], timeout: float = 2.0) -> Exchange:
        """Wait until an exchange matching ``predicate`` is logged; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for ex in self.log[seen:]:
                    if predicate(ex):
                        return ex
                seen = len(self.log)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.link_name}: no matching exchange in {timeout} s")
                self._cond.wait(left)

    def received(self) -> list[str]:
        """Commands received so far, as text."""
        with self._cond:
            return [ex.command for ex in self.log if ex.received]

    def clear_log(self) -> None:
        """Forget the log."""
        with self._cond:
            self.log.clear()

    # ------------------------------------------------------------------ thread plumbing
    def call(self, fn: Callable[[], R]) -> R:
        """Run ``fn`` on the emulator thread (where all pty I/O happens) and return its result."""
        if self._thread is None or threading.current_thread() is self._thread:
            return fn()
        box: list[Any] = []
        done = threading.Event()
        self._calls.put((fn, box, done))
        os.write(self._wake_w, b"x")
        if not done.wait(5):
            raise TimeoutError("emulator thread did not answer")
        if box and isinstance(box[0], BaseException):
            raise box[0]
        return box[0] if box else None  # type: ignore[return-value]

    def _run(self) -> None:
        while not self._stop.is_set():
            fds = [self._wake_r] + ([self._master] if self._master is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.02)
            except (OSError, ValueError):
                ready = []
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 512)
            while not self._calls.empty():
                fn, box, done = self._calls.get()
                try:
                    box.append(fn())
                except BaseException as e:  # handed to the caller
                    box.append(e)
                done.set()
            self._tick()
            if self._master is not None and self._master in ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                if data:
                    try:
                        self._receive(data)
                    except Exception as e:  # an emulator bug must not kill the thread
                        self.errors.append(e)

    def _tick(self) -> None:
        if self._boot_until is not None and self._powered and self.clock() >= self._boot_until:
            self._boot_until = None
            self.on_booted()

    def _receive(self, data: bytes) -> None:
        self._inbuf += data
        for command in self.split_commands(self._inbuf):
            self._tick()
            if not self._powered or self.silent or (self.booting
                                                     and not self.answers_while_booting):
                self._log(command, b"")
                continue
            if command in self._refuse:
                self._refuse = self._refuse - {command}
                reply = self.error_reply(command)
            elif self._fail > 0:
                self._fail -= 1
                reply = self.error_reply(command)
            else:
                reply = self.handle(command)
            if reply and (g := self._garble) is not None and (
                    g[0] is None or command.strip(b"\r\n ").lower().startswith(g[0].lower())):
                self._garble = None
                reply = self.garble(reply, g[1], g[2], g[3])
            if reply and self._follow:
                reply, self._follow = reply + self._follow, b""
            self._emit(command, reply)

    def _emit(self, received: bytes, reply: bytes) -> None:
        """Log and send a reply, with the configured faults (delay, noise, split)."""
        self._log(received, reply)
        if not reply or not self._powered or self.silent:
            return
        if self.reply_delay_s and self._stop.wait(self.reply_delay_s):
            return
        data = self.garbage_prefix + reply
        step = self.split_replies or len(data)
        for i in range(0, len(data), step):
            if i and self._stop.wait(self.split_pause_s):
                return
            self._write(data[i:i + step])

    def _log(self, received: bytes, reply: bytes) -> None:
        with self._cond:
            self.log.append(Exchange(self.clock(), bytes(received), bytes(reply)))
            self._cond.notify_all()

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        try:
            os.write(self._master, data)
        except OSError as e:  # nobody reading (EAGAIN) or no reader (EIO): bytes are lost
            if e.errno not in (errno.EAGAIN, errno.EIO, errno.EWOULDBLOCK):
                raise

    def _open_pty(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._inbuf.clear()
        assert self._link_dir is not None
        link = self._link_dir / self.link_name
        tmp = self._link_dir / f".{self.link_name}.new"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, link)

    def _close_pty(self) -> None:
        if self._link_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (self._link_dir / self.link_name).unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    # ------------------------------------------------------------------ protocol hooks
    def split_commands(self, buf: bytearray) -> list[bytes]:
        """Remove and return complete commands from ``buf`` (default: lines; CR, LF or CR LF)."""
        out: list[bytes] = []
        while True:
            if self._skip_lf and buf[:1] == b"\n":
                del buf[:1]
            self._skip_lf = False
            ends = [i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0]
            if not ends:
                return out
            cut = min(ends)
            if buf[cut:cut + 2] == b"\r\n":
                cut += 1
            elif buf[cut:cut + 1] == b"\r":
                self._skip_lf = True      # an LF may follow in the next read
            line = bytes(buf[:cut + 1])
            del buf[:cut + 1]
            if line.strip(b"\r\n") or self.keep_empty_lines:
                out.append(line)

    _skip_lf = False
    keep_empty_lines = False

    def handle(self, command: bytes) -> bytes:
        """The reply to one command."""
        raise NotImplementedError

    def error_reply(self, command: bytes) -> bytes:
        """The protocol's error reply (used by :meth:`fail_next`)."""
        return b"ERROR\r\n"

    def reset_state(self) -> None:
        """Power was cut or applied: forget everything volatile."""

    def on_power_up(self) -> None:
        """Power just came on (boot starts now)."""

    def on_booted(self) -> None:
        """Boot finished."""
