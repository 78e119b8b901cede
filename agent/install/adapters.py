"""The USB-serial adapters plugged into this machine, and writing one's identity into a site.

pyserial's :func:`serial.tools.list_ports.comports` reads sysfs; this module only shapes its
answers (vendor, product, serial number, the port of a multi-port adapter, the current tty)
and picks the one a field engineer names, by serial number or by tty::

    diemcau-agent adapters
    diemcau-agent adapters --write site.yaml --device codec=A10KCODE --device camera=ttyUSB1

An adapter whose serial number is empty, or shared with another adapter plugged in at the same
time (many CH340/PL2303 clones), is identified by the USB port it is in instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from agent.config import ConfigError, parse_config
from agent.install import udev
from agent.install.yamledit import EditError, set_serial_port

Lister = Callable[[], Iterable[ListPortInfo]]


@dataclass(frozen=True)
class Adapter:
    """One tty of a USB-serial adapter."""

    tty: str
    vendor_id: str
    product_id: str
    serial_number: str | None
    interface: int | None
    usb_port: str
    multi_port: bool
    manufacturer: str | None
    product: str | None
    description: str

    def identity(self, serial_unique: bool = True) -> dict[str, Any]:
        """What the site file's ``serial.adapter`` records for this port."""
        out: dict[str, Any] = {"vendor_id": self.vendor_id, "product_id": self.product_id}
        if self.serial_number and serial_unique:
            out["serial_number"] = self.serial_number
        else:
            out["usb_port"] = self.usb_port
        if self.multi_port and self.interface is not None:
            out["interface"] = self.interface
        return out

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json`` and the diagnostics archive)."""
        return asdict(self)


LOCATION = re.compile(r"^(?P<port>[0-9]+-[0-9]+(?:\.[0-9]+)*)(?::[0-9]+\.(?P<intf>[0-9]+))?$")


def from_port_info(info: ListPortInfo) -> Adapter | None:
    """An :class:`Adapter` from pyserial's description of a tty; None if it is not USB."""
    if info.vid is None or info.pid is None or not info.location:
        return None
    m = LOCATION.match(info.location)
    if m is None:
        return None
    interface = int(m["intf"]) if m["intf"] is not None else None
    serial = info.serial_number.strip() if info.serial_number else None
    return Adapter(tty=info.device, vendor_id=f"{info.vid:04x}", product_id=f"{info.pid:04x}",
                   serial_number=serial or None, interface=interface, usb_port=m["port"],
                   multi_port=interface is not None, manufacturer=info.manufacturer,
                   product=info.product, description=info.description)


def list_adapters(lister: Lister = list_ports.comports) -> list[Adapter]:
    """Every USB-serial tty plugged in, sorted by USB port then interface."""
    found = [a for a in (from_port_info(i) for i in lister()) if a is not None]
    return sorted(found, key=lambda a: (a.usb_port, a.interface or 0, a.tty))


def serial_is_unique(adapter: Adapter, adapters: Sequence[Adapter]) -> bool:
    """False when another adapter plugged in (another USB port) reports the same serial."""
    if not adapter.serial_number:
        return False
    return not any(a.serial_number == adapter.serial_number and a.usb_port != adapter.usb_port
                   and (a.vendor_id, a.product_id) == (adapter.vendor_id, adapter.product_id)
                   for a in adapters)


class AdapterError(ValueError):
    """A ``--device`` that names no adapter, or more than one; nothing was written."""


def pick(adapters: Sequence[Adapter], wanted: str) -> Adapter:
    """The adapter port named by ``wanted``: a tty (``ttyUSB0``, ``/dev/ttyUSB0``, a symlink
    to it), a serial number, or ``SERIAL:INTERFACE`` for one port of a multi-port adapter."""
    tty = wanted if wanted.startswith("/dev/") else f"/dev/{wanted}"
    real = os.path.realpath(tty) if os.path.exists(tty) else tty
    by_tty = [a for a in adapters if a.tty in (tty, real)]
    if by_tty:
        return by_tty[0]
    serial, intf = wanted, ""
    matches = [a for a in adapters if a.serial_number == wanted]
    if not matches and ":" in wanted:
        serial, _, intf = wanted.rpartition(":")
        matches = [a for a in adapters if a.serial_number == serial and intf.isdigit()
                   and a.interface == int(intf)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        have = ", ".join(f"{a.tty} ({a.serial_number or 'no serial'})" for a in adapters)
        raise AdapterError(f"no adapter plugged in is {wanted!r} (plugged in: "
                           f"{have or 'none'})")
    if len({a.usb_port for a in matches}) > 1:
        raise AdapterError(f"{len(matches)} adapters report serial number {serial!r} (a clone "
                           "without its own): name it by its tty instead, it will be "
                           "identified by its USB port")
    ports = ", ".join(f"{a.tty} = {serial}:{a.interface}" for a in matches)
    raise AdapterError(f"{serial!r} is a {len(matches)}-port adapter: choose one of {ports}")


def parse_assignments(values: Sequence[str]) -> list[tuple[str, str]]:
    """``["codec=A10KCODE", ...]`` as ``[("codec", "A10KCODE"), ...]``."""
    out = []
    for v in values:
        device, sep, wanted = v.partition("=")
        if not sep or not device or not wanted:
            raise AdapterError(f"--device {v!r}: expected DEVICE=SERIAL_OR_TTY, e.g. "
                               "codec=A10KCODE or codec=ttyUSB0")
        out.append((device, wanted))
    return out


def write_identities(path: Path, assignments: Sequence[tuple[str, str]],
                     adapters: Sequence[Adapter]) -> list[str]:
    """Record each assigned adapter in ``path``'s devices (one targeted edit each, then one
    atomic write); returns a line per device saying what it now is. Raises
    :class:`AdapterError`, :class:`~agent.config.ConfigError` or
    :class:`~agent.install.yamledit.EditError`, having written nothing."""
    text = path.read_text(encoding="utf-8")
    cfg = parse_config(text, str(path))
    done = []
    for device, wanted in assignments:
        d = cfg.devices.get(device)
        if d is None:
            raise AdapterError(f"--device {device}=…: the site has no device {device!r} "
                               f"(it has: {', '.join(cfg.devices)})")
        if d.serial is None:
            raise AdapterError(f"devices.{device}: no serial port (no driver): nothing to "
                               "identify")
        a = pick(adapters, wanted)
        url = d.serial.url if udev.port_kind(d.serial.url) == "adapter" else \
            udev.default_url(device)
        ident = a.identity(serial_unique=serial_is_unique(a, adapters))
        text = set_serial_port(text, device, url, ident)
        how = (f"serial {ident['serial_number']}" if "serial_number" in ident
               else f"USB port {ident['usb_port']} (label it: the name follows the port)")
        intf = f", interface {ident['interface']}" if "interface" in ident else ""
        done.append(f"{device}: {url} = {a.tty} ({a.vendor_id}:{a.product_id}, {how}{intf})")
    try:
        parse_config(text, str(path))
    except ConfigError as e:  # pragma: no cover - the edit only adds validated fields
        raise EditError("; ".join(e.problems)) from None
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
    return done


def describe(adapters: Sequence[Adapter]) -> str:
    """A table for the field engineer."""
    if not adapters:
        return ("Không thấy bộ chuyển USB-serial nào / no USB-serial adapter plugged in "
                "(check the cable; `dmesg | tail`)")
    rows = [("tty", "vendor:product", "serial", "intf", "usb port", "product")]
    for a in adapters:
        rows.append((a.tty, f"{a.vendor_id}:{a.product_id}",
                     a.serial_number or "(none: by USB port)",
                     "" if a.interface is None else str(a.interface), a.usb_port,
                     " ".join(x for x in (a.manufacturer, a.product) if x) or a.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


__all__ = ["Adapter", "AdapterError", "EditError", "describe", "from_port_info",
           "list_adapters", "parse_assignments", "pick", "serial_is_unique",
           "write_identities"]
