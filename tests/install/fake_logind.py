"""A stand-in ``org.freedesktop.login1`` on a private D-Bus, for the real ``systemd-inhibit``.

``dbus-daemon --session`` gives a private bus; :class:`FakeLogind` owns logind's name on it
and answers ``Manager.Inhibit(what, who, why, mode) → fd`` as logind does: the caller keeps
the write end of a pipe, and the inhibitor lasts until that end is closed (logind watches a
FIFO the same way). Point ``systemd-inhibit`` at the bus with ``DBUS_SYSTEM_BUS_ADDRESS``.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from jeepney import HeaderFields, MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"


@dataclass
class Inhibitor:
    """One inhibitor as logind would list it; ``released`` is set when its fd is closed."""

    what: str
    who: str
    why: str
    mode: str
    released: threading.Event = field(default_factory=threading.Event)


class FakeLogind:
    """Serves ``Inhibit`` and ``ListInhibitors`` on ``address`` in a background thread."""

    def __init__(self, address: str) -> None:
        self.conn = open_dbus_connection(bus=address, enable_fds=True)
        reply = self.conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.login1"),
                                             timeout=5)
        assert reply.body == (1,), f"cannot own org.freedesktop.login1: {reply.body}"
        self.inhibitors: list[Inhibitor] = []
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-logind", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and leave the bus."""
        self._stop.set()
        self._thread.join(5)
        self.conn.close()

    def held(self) -> list[Inhibitor]:
        """Inhibitors whose fd is still open."""
        with self.changed:
            return [i for i in self.inhibitors if not i.released.is_set()]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Inhibitor]:
        """Block until ``count`` inhibitors are held (and return them)."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.held()) == count, timeout), \
                f"expected {count} inhibitor(s) held, have {len(self.held())}"
            return self.held()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.conn.receive(timeout=0.2)
            except TimeoutError:
                continue
            except (OSError, ValueError):
                return
            h = msg.header
            if h.message_type != MessageType.method_call:
                continue
            member = h.fields.get(HeaderFields.member)
            if h.fields.get(HeaderFields.path) != PATH or member not in ("Inhibit",
                                                                        "ListInhibitors"):
                self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))
                continue
            if member == "ListInhibitors":
                rows = [(i.what, i.who, i.why, i.mode, 0, os.getpid()) for i in self.held()]
                self.conn.send(new_method_return(msg, "a(ssssuu)", (rows,)))
                continue
            what, who, why, mode = msg.body
            read_end, write_end = os.pipe()
            inh = Inhibitor(what, who, why, mode)
            self.conn.send(new_method_return(msg, "h", (write_end,)))
            os.close(write_end)
            with self.changed:
                self.inhibitors.append(inh)
                self.changed.notify_all()
            threading.Thread(target=self._watch, args=(inh, read_end), daemon=True).start()

    def _watch(self, inh: Inhibitor, fd: int) -> None:
        # The inhibitor ends when every copy of the write end is closed: EOF here.
        try:
            while True:
                select.select([fd], [], [])
                if not os.read(fd, 64):
                    break
        finally:
            os.close(fd)
            with self.changed:
                inh.released.set()
                self.changed.notify_all()


@contextlib.contextmanager
def private_bus() -> Iterator[str]:
    """A private message bus (``dbus-daemon --session``); yields its address."""
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile",
                             "--print-address=1"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("unix:"), f"dbus-daemon said {address!r}"
        yield address
    finally:
        proc.terminate()
        proc.wait(10)
