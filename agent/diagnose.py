"""``diemcau-agent diagnose``: one archive a technician can send to the support line.

``diemcau-diag-<site>-<time>.tar.gz`` (mode 0600) holds what support asks for first:

==========================  =================================================================
``summary.txt``             versions, board, what went wrong while collecting
``config/site.yaml``        the site file with every secret masked (``***``)
``config/check.txt``        check-config's verdict, boot pins included
``config/files.txt``        /etc/diemcau's files: names, modes, sizes; certificates' subject
                            and expiry — never a key's or a credentials file's content
``boot/config.txt``         the boot firmware config in place
``state/*``                 room state, schedule cache, last known good time
``state/outbox.json``       outbox statistics (pending count, oldest, kinds)
``status.json``             the running agent's status (control socket), if it answers
``journal.txt``             ``journalctl -u diemcau-agent -n 2000``, if there is a journal
``pins.txt``                ``pinctrl get`` for the room's pins, if pinctrl is there
``serial.json``             USB-serial adapters plugged in, and where the site's ports point
``systemd.txt``             the unit's state
==========================  =================================================================

No secret goes in: the broker password (credentials file), device passwords (driver
settings), key files. Every member is scrubbed of those values before it is written, and the
archive is checked once more before it is closed.

Example::

    path = collect(Options(config=Path("/etc/diemcau/site.yaml")), Path("diag.tar.gz"))
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from agent import __version__
from agent.config import SECRET_KEYS, ConfigError, SiteConfig, load_config

PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                         re.DOTALL)
MASK = "***"
PACKAGES = ("diemcau", "paho-mqtt", "gpiozero", "pyserial", "pydantic", "psutil", "PyYAML",
            "lgpio")
Runner = Callable[[Sequence[str]], str]


def run(cmd: Sequence[str]) -> str:
    """A command's output (stdout then stderr), or why it could not run."""
    if shutil.which(cmd[0]) is None:
        return f"({cmd[0]} not available on this machine)\n"
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({' '.join(cmd)} failed: {e})\n"
    return r.stdout + (f"\n[stderr]\n{r.stderr}" if r.stderr.strip() else "")


@dataclass
class Options:
    """Where to look (defaults: an installed room)."""

    config: Path = Path("/etc/diemcau/site.yaml")
    state_dir: Path = Path("/var/lib/diemcau")
    boot_config: Path = Path("/boot/firmware/config.txt")
    udev_rules: Path = Path("/etc/udev/rules.d/99-diemcau-serial.rules")
    runner: Runner = run
    lister: Callable[[], Any] | None = None
    clock: Callable[[], float] = time.time
    notes: list[str] = field(default_factory=list)


# ---- secrets -----------------------------------------------------------------------------

def _secret_values(raw: Any) -> list[str]:
    out: list[str] = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            if SECRET_KEYS.search(str(k)) and isinstance(v, str | int | float) and str(v):
                out.append(str(v))
            else:
                out.extend(_secret_values(v))
    elif isinstance(raw, list):
        for v in raw:
            out.extend(_secret_values(v))
    return out


def mask(raw: Any) -> Any:
    """``raw`` (plain YAML data) with the value of every secret-looking key masked."""
    if isinstance(raw, dict):
        return {k: MASK if SECRET_KEYS.search(str(k)) and not isinstance(v, dict | list)
                else mask(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [mask(v) for v in raw]
    return raw


class Secrets:
    """The secret values this room has, so that none reaches the archive."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, *values: str) -> None:
        """Remember values (too short to be a real secret are ignored: they would mask noise)."""
        for v in values:
            v = v.strip()
            if len(v) >= 4:
                self.values.add(v)

    def scrub(self, text: str) -> str:
        """``text`` without any private key block or known secret value."""
        text = PEM_PRIVATE.sub("-----(private key removed)-----", text)
        for v in sorted(self.values, key=len, reverse=True):
            text = text.replace(v, MASK)
        return text

    def found_in(self, data: bytes) -> bool:
        """True if ``data`` still holds a secret (the archive's last check)."""
        text = data.decode("utf-8", errors="replace")
        return bool(PEM_PRIVATE.search(text)) or any(v in text for v in self.values)


def _gather_secrets(raw: Any, cfg: SiteConfig | None, secrets: Secrets) -> None:
    secrets.add(*_secret_values(raw))
    if cfg is None:
        return
    b = cfg.broker
    files = [b.credentials_file] + ([b.tls.key_file] if b.tls else [])
    for path in files:
        if path is None:
            continue
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        if path == b.credentials_file:
            try:
                secrets.add(*_secret_values(yaml.safe_load(text)))
            except yaml.YAMLError:
                secrets.add(*text.splitlines())
        else:
            secrets.add(*(ln for ln in text.splitlines() if not ln.startswith("-----")))


# ---- the parts ---------------------------------------------------------------------------

def _versions() -> str:
    lines = [f"diemcau-agent {__version__}", f"python {sys.version.split()[0]}",
             f"platform {platform.platform()}"]
    for pkg in PACKAGES:
        try:
            lines.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{pkg} (not installed)")
    for path in (Path("/etc/os-release"), Path("/proc/device-tree/model")):
        try:
            text = path.read_bytes().decode(errors="replace").replace("\0", "")
        except OSError:
            continue
        pretty = re.search(r'^PRETTY_NAME="?([^"\n]*)', text, re.M)
        lines.append(f"{path}: {pretty[1] if pretty else text.strip()}")
    return "\n".join(lines) + "\n"


def _files(etc: Path, runner: Runner) -> str:
    if not etc.is_dir():
        return f"({etc} does not exist)\n"
    lines = []
    for p in sorted(etc.rglob("*")):
        try:
            st = p.lstat()
        except OSError as e:
            lines.append(f"{p}: {e.strerror}")
            continue
        lines.append(f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid} {st.st_size:>8} {p}")
        if p.suffix == ".crt" and p.is_file():
            out = runner(["openssl", "x509", "-noout", "-subject", "-enddate", "-in", str(p)])
            lines += [f"    {ln}" for ln in out.strip().splitlines()]
    return "\n".join(lines) + "\n"


def _outbox(path: Path, clock: Callable[[], float]) -> dict[str, Any]:
    if not path.exists():
        return {"present": False}
    out: dict[str, Any] = {"present": True, "bytes": path.stat().st_size}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            n, oldest, last = conn.execute(
                "SELECT count(*), min(ts), max(seq) FROM events").fetchone()
            kinds = dict(conn.execute(
                "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY 2 DESC").fetchall())
            recent = [{"seq": s, "kind": k, "ts": ts} for s, k, ts in conn.execute(
                "SELECT seq, kind, ts FROM events ORDER BY seq DESC LIMIT 50")]
        finally:
            conn.close()
    except sqlite3.Error as e:
        out["error"] = f"cannot read: {e}"
        return out
    out.update(pending=n, oldest_age_s=None if oldest is None else round(clock() - oldest, 1),
               last_seq=last, pending_by_kind=kinds, recent_pending=recent)
    return out


def _status(state_dir: Path) -> dict[str, Any]:
    from agent.control import request

    try:
        return request(state_dir / "agent.sock", "status", timeout=5)
    except (OSError, ValueError) as e:
        return {"ok": False, "error": f"the agent does not answer on its socket: {e}"}


def _pins(cfg: SiteConfig | None, state_dir: Path, runner: Runner) -> str:
    if cfg is None:
        return "(no valid site file: pins unknown)\n"
    pins = {f"relay {n}": d.relay.pin for n, d in cfg.devices.items()}
    if cfg.button is not None:
        pins["button"] = cfg.button.pin
    led = cfg.status_led
    if led is not None:
        pins.update({f"led {c}": getattr(led.pins, c) for c in ("red", "green", "blue")}
                    if led.kind == "rgb" else {"led": led.pin})
    lines = [f"{what}: BCM {pin}" for what, pin in pins.items()]
    lines.append("")
    lines.append(runner(["pinctrl", "get", ",".join(str(p) for p in sorted(set(pins.values())))]))
    return "\n".join(lines)


def _serial(cfg: SiteConfig | None, lister: Callable[[], Any] | None) -> dict[str, Any]:
    from agent.install import adapters, udev

    out: dict[str, Any] = {}
    try:
        found = adapters.list_adapters() if lister is None else adapters.list_adapters(lister)
        out["adapters"] = [a.as_dict() for a in found]
    except OSError as e:
        out["adapters_error"] = str(e)
    if cfg is not None:
        ports = {}
        for p in udev.ports(cfg):
            path = Path(p.url)
            ports[p.device] = {"url": p.url, "kind": p.kind,
                               "exists": path.exists() if p.kind != "network" else None,
                               "points_to": os.path.realpath(p.url) if path.is_symlink()
                               else None,
                               "adapter": p.adapter.model_dump() if p.adapter else None}
        out["ports"] = ports
    return out


def _check(cfg: SiteConfig | None, problems: list[str], opts: Options) -> str:
    from agent.install import bootcfg, udev

    if cfg is None:
        return "site file INVALID:\n" + "\n".join(f"  {p}" for p in problems) + "\n"
    lines = [f"site {cfg.site.id} ({cfg.site.name}): valid; config hash {cfg.fingerprint()}"]
    lines += [f"  warning: {m}" for m in cfg.broker.missing_files()]
    lines += [f"  udev: {m}" for m in udev.problems(cfg)]
    try:
        text = opts.boot_config.read_text(errors="replace")
    except OSError as e:
        lines.append(f"  boot: {opts.boot_config}: {e.strerror}")
    else:
        model = bootcfg.detect_model()
        bad, warn = bootcfg.check(cfg, text, model, opts.boot_config.parent,
                                  str(opts.boot_config))
        lines += [f"  boot PROBLEM: {m}" for m in bad] + [f"  boot warning: {m}" for m in warn]
        if not bad:
            lines.append(f"  boot: every relay held released at boot (board {model or '?'})")
    return "\n".join(lines) + "\n"


# ---- the archive -------------------------------------------------------------------------

def collect(opts: Options, out: Path | None = None) -> Path:
    """Write the archive (to ``out``, or ``diemcau-diag-<site>-<time>.tar.gz`` here)."""
    secrets = Secrets()
    members: dict[str, bytes] = {}
    raw: Any = None
    cfg: SiteConfig | None = None
    problems: list[str] = []
    try:
        raw = yaml.safe_load(opts.config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        opts.notes.append(f"site file {opts.config}: {e}")
    try:
        cfg = load_config(opts.config)
    except ConfigError as e:
        problems = e.problems
    _gather_secrets(raw, cfg, secrets)

    def text(name: str, body: str) -> None:
        members[name] = secrets.scrub(body).encode()

    def blob(name: str, data: Any) -> None:
        text(name, json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")

    parts: list[tuple[str, Callable[[], None]]] = [
        ("config/site.yaml", lambda: text("config/site.yaml", yaml.safe_dump(
            mask(raw), allow_unicode=True, sort_keys=False) if raw is not None
            else "(site file unreadable)\n")),
        ("config/check.txt", lambda: text("config/check.txt", _check(cfg, problems, opts))),
        ("config/files.txt", lambda: text("config/files.txt",
                                          _files(opts.config.parent, opts.runner))),
        ("boot/config.txt", lambda: text("boot/config.txt", opts.boot_config.read_text(
            errors="replace") if opts.boot_config.exists() else "(no boot config here)\n")),
        ("udev", lambda: text("udev/99-diemcau-serial.rules", opts.udev_rules.read_text(
            errors="replace") if opts.udev_rules.exists() else "(not installed)\n")),
        ("state", lambda: _state(opts.state_dir, text)),
        ("state/outbox.json", lambda: blob("state/outbox.json",
                                           _outbox(opts.state_dir / "outbox.sqlite",
                                                   opts.clock))),
        ("status.json", lambda: blob("status.json", _status(opts.state_dir))),
        ("journal.txt", lambda: text("journal.txt", opts.runner(
            ["journalctl", "-u", "diemcau-agent", "-n", "2000", "--no-pager", "-o",
             "short-iso"]))),
        ("pins.txt", lambda: text("pins.txt", _pins(cfg, opts.state_dir, opts.runner))),
        ("serial.json", lambda: blob("serial.json", _serial(cfg, opts.lister))),
        ("systemd.txt", lambda: text("systemd.txt", opts.runner(
            ["systemctl", "status", "--no-pager", "--lines=0", "diemcau-agent.service"]) +
            opts.runner(["systemctl", "show", "diemcau-agent.service", "-p",
                         "ActiveState,SubState,NRestarts,WatchdogUSec,ExecMainStartTimestamp,"
                         "StatusText"]))),
    ]
    for name, make in parts:
        try:
            make()
        except Exception as e:  # one broken part must not cost the technician the rest
            opts.notes.append(f"{name}: {type(e).__name__}: {e}")
    site = cfg.site.id if cfg else "unknown"
    when = time.strftime("%Y%m%dT%H%M%S", time.localtime(opts.clock()))
    text("summary.txt", f"diemcau diagnostics for room {site}, {when}\n\n{_versions()}\n"
         + ("problems while collecting:\n" + "\n".join(f"  {n}" for n in opts.notes) + "\n"
            if opts.notes else "collected without problems\n"))
    for name, data in members.items():
        if secrets.found_in(data):  # pragma: no cover - scrub() must have removed it
            members[name] = b"(removed: it still held a secret)\n"
    out = out or Path(f"diemcau-diag-{site}-{when}.tar.gz")
    prefix = f"diemcau-diag-{site}-{when}"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            info.mtime = int(opts.clock())
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return out


def _state(state_dir: Path, text: Callable[[str, str], None]) -> None:
    for name in ("room-state.json", "schedule.json", "last-known-good", "restart-pending"):
        p = state_dir / name
        if p.exists():
            text(f"state/{name}", p.read_text(errors="replace"))
    listing = []
    if state_dir.is_dir():
        for p in sorted(state_dir.iterdir()):
            with_size = p.stat().st_size if p.is_file() else "-"
            listing.append(f"{stat.filemode(p.lstat().st_mode)} {with_size:>10} {p.name}")
    text("state/files.txt", "\n".join(listing) + "\n" if listing else "(no state directory)\n")
