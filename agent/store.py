"""Small files in the agent's state directory that must survive a restart or a power cut.

Each is written atomically (temporary file, fsync, rename, fsync of the directory), so after a
power loss a file holds either the old or the new content, never half of each.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _write(path: Path, data: bytes, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably."""
    tmp = _tmp(path)
    _write(tmp, data, sync=True)
    os.replace(tmp, path)
    _fsync_path(path.parent)


def write_quick(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically but without a disk sync: for a stamp written
    often (the kernel writes it out within seconds; a power cut may leave the previous one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def read_boot_id() -> str:
    """This boot's id (changes at every boot), or "" where the kernel does not say."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def system_stopping() -> bool:
    """True while systemd is shutting the machine down (``systemctl is-system-running``)."""
    import shutil
    import subprocess

    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        return False
    try:
        out = subprocess.run([systemctl, "is-system-running"], capture_output=True, text=True,
                             timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "stopping"


def previous_stop(alive: dict[str, Any] | None, boot_id: str) -> tuple[str, float | None]:
    """How the agent stopped last time, from the alive stamp it left, and when it was last
    seen alive: ``clean`` (it said so when it stopped), ``power_loss_or_reboot`` (it did not,
    and the machine has booted since), ``crash`` (it did not, same boot: killed, watchdog).
    Without a stamp (a room's first start, or the first after an upgrade from agent 0.1,
    which wrote none) nothing is known to have stopped badly: ``clean``, and no time."""
    if not alive:
        return "clean", None
    at = alive.get("at")
    last = float(at) if isinstance(at, int | float) and at > 0 else None
    if alive.get("stopped"):
        return "clean", last
    if alive.get("boot_id") != boot_id:
        return "power_loss_or_reboot", last
    return "crash", last


class StateDir:
    """The agent's state directory: room state, the schedule cache and the outbox."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.room_file = self.root / "room-state.json"
        self.schedule_file = self.root / "schedule.json"
        self.outbox_file = self.root / "outbox.sqlite"
        self.socket_path = self.root / "agent.sock"
        self.clock_file = self.root / "last-known-good"
        self.alive_file = self.root / "alive.json"
        self.link_file = self.root / "link-state.json"
        self._room_unsynced = False

    def load_room(self) -> dict[str, Any] | None:
        """What :func:`agent.core.room.persistent` saved last, or None (first start or unreadable,
        in which case the bad file is kept beside it for a technician). A state saved without a
        sync and not yet synced (the agent was killed in between) is the last one if it reads
        whole; a torn one (a power cut before its sync) is ignored for the synced one."""
        unsynced = _tmp(self.room_file)
        try:
            data = json.loads(unsynced.read_bytes())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            log.warning("unsynced room state %s unreadable (%s): the synced one is used",
                        unsynced, e)
        else:
            if isinstance(data, dict):
                self._room_unsynced = True   # made durable at the next sync_room()
                return data
        return self._load_json(self.room_file)

    def save_room(self, data: dict[str, Any], sync: bool = True) -> None:
        """Save the room state. With ``sync`` it is durable on return. Without, it is only
        written (no disk sync) to its temporary file, which :meth:`load_room` takes over the
        saved one (a kill -9 loses nothing), and :meth:`sync_room` makes it durable later
        (fsync, rename, fsync of the directory): a power cut before then leaves the previous
        state, whole. The agent syncs a decision's state after its reply and state messages
        went out and before it acknowledges the command (``docs/benchmarks.md``)."""
        text = json.dumps(data, sort_keys=True).encode()
        if sync:
            write_atomic(self.room_file, text)
            self._room_unsynced = False
            return
        _write(_tmp(self.room_file), text, sync=False)
        self._room_unsynced = True

    def sync_room(self) -> None:
        """Make the last :meth:`save_room` with ``sync=False`` durable (nothing if none)."""
        if not self._room_unsynced:
            return
        tmp = _tmp(self.room_file)
        _fsync_path(tmp)
        os.replace(tmp, self.room_file)
        _fsync_path(self.root)
        self._room_unsynced = False

    def load_schedule(self) -> bytes | None:
        """The last valid schedule message exactly as it came from the district."""
        try:
            return self.schedule_file.read_bytes()
        except FileNotFoundError:
            return None

    def save_schedule(self, payload: bytes) -> None:
        write_atomic(self.schedule_file, payload)

    def load_alive(self) -> dict[str, Any] | None:
        """The last alive stamp: ``{"at", "boot_id", "stopped"}`` (see :meth:`stamp_alive`)."""
        return self._load_json(self.alive_file)

    def stamp_alive(self, at: float, boot_id: str, stopped: str | None = None) -> None:
        """Say the agent is alive at ``at`` (cheaply: no disk sync), or, with ``stopped`` (the
        reason of a clean stop), that it stopped cleanly (durably: it is the last word)."""
        data = json.dumps({"at": at, "boot_id": boot_id, "stopped": stopped}).encode()
        (write_atomic if stopped else write_quick)(self.alive_file, data)

    def load_link(self) -> dict[str, Any]:
        """What the MQTT link keeps across restarts (info digest, rejected schedule)."""
        return self._load_json(self.link_file) or {}

    def save_link(self, data: dict[str, Any]) -> None:
        write_atomic(self.link_file, json.dumps(data, sort_keys=True).encode())

    def _load_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            aside = path.with_name(path.name + ".unreadable")
            log.error("state file %s unreadable (%s); kept as %s", path, e, aside)
            os.replace(path, aside)
            return None
        return data if isinstance(data, dict) else None
