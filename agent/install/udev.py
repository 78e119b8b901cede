"""udev rules that give each USB-serial adapter the name the site file uses.

A device's ``serial.url`` names its port: ``/dev/diemcau-codec`` (or ``/dev/codec``, any name
under ``/dev`` that the kernel does not hand out itself). The rule that creates that name is
made from the adapter's identity in the same section (``serial.adapter``: vendor, product,
serial number, and for a multi-port adapter its interface number), so the installer never
installs a rule with a placeholder in it: a site whose adapters are unknown is refused, with
the devices named and the command that fills them in.

No rule is needed for the Pi's own UART (``/dev/serial0``, ``/dev/ttyAMA*``), udev's own
stable names (``/dev/serial/by-id/…``, ``/dev/serial/by-path/…``) or a network port
(``socket://``, ``rfc2217://``).

Example::

    text = render_rules(load_config(Path("site.yaml")))   # raises UdevError with the reasons
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agent.config import SiteConfig, UsbAdapter

RULES_PATH = "/etc/udev/rules.d/99-diemcau-serial.rules"
KERNEL_NAMES = re.compile(r"^/dev/(tty(USB|ACM|S|AMA|XRUSB|CH343USB)[0-9]+)$")
PI_UART = re.compile(r"^/dev/(serial[01]|ttyAMA[0-9]+)$")
STABLE = ("/dev/serial/by-id/", "/dev/serial/by-path/")
SYMLINK = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9._-]{0,62}(/[A-Za-z0-9][A-Za-z0-9._-]{0,62})?$")

PortKind = Literal["adapter", "pi_uart", "stable", "network", "unstable", "invalid"]


class UdevError(ValueError):
    """The site's serial ports cannot be named by rules; ``problems`` says why, per device."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Port:
    """One device's serial port, as the installer sees it."""

    device: str
    url: str
    kind: PortKind
    adapter: UsbAdapter | None


def port_kind(url: str) -> PortKind:
    """What kind of port ``url`` names (see the module's docstring)."""
    if "://" in url:
        return "network"
    if PI_UART.match(url):
        return "pi_uart"
    if url.startswith(STABLE):
        return "stable"
    if KERNEL_NAMES.match(url):
        return "unstable"
    if SYMLINK.match(url):
        return "adapter"
    return "invalid"


def ports(cfg: SiteConfig) -> list[Port]:
    """Every device with a serial port, in power-on order."""
    out = []
    for name in cfg.devices_in_order():
        serial = cfg.devices[name].serial
        if serial is not None:
            out.append(Port(name, serial.url, port_kind(serial.url), serial.adapter))
    return out


def uses_pi_uart(cfg: SiteConfig) -> list[str]:
    """Devices wired to the Pi's own UART (GPIO 14/15)."""
    return [p.device for p in ports(cfg) if p.kind == "pi_uart"]


def default_url(device: str) -> str:
    """The port name ``adapters --write`` gives a device whose url is a kernel name."""
    return f"/dev/diemcau-{device}"


def problems(cfg: SiteConfig) -> list[str]:
    """Why rules for ``cfg`` cannot be made (each names its field); [] if they can."""
    out = []
    seen: dict[tuple[object, ...], str] = {}
    names: dict[str, str] = {}
    for p in ports(cfg):
        field = f"devices.{p.device}.serial"
        if p.kind == "unstable":
            out.append(f"{field}.url: {p.url} is numbered by the kernel in plugging order and "
                       f"changes; run `diemcau-agent adapters --write SITE --device "
                       f"{p.device}=<serial number or tty>` (it names the port "
                       f"{default_url(p.device)})")
        elif p.kind == "invalid":
            out.append(f"{field}.url: {p.url!r} is not a device path a udev rule can create "
                       "(use /dev/diemcau-<device>)")
        elif p.kind == "adapter" and p.adapter is None:
            out.append(f"{field}.adapter: missing: nothing tells which USB adapter is "
                       f"{p.url}; plug it in and run `diemcau-agent adapters --write SITE "
                       f"--device {p.device}=<serial number or tty>`")
        if p.kind != "adapter" or p.adapter is None:
            continue
        a = p.adapter
        key = (a.vendor_id, a.product_id, a.serial_number, a.interface, a.usb_port)
        if key in seen:
            out.append(f"{field}.adapter: the same adapter as devices.{seen[key]} (one port "
                       "cannot be two devices; a multi-port adapter needs 'interface')")
        seen[key] = p.device
        if p.url in names:
            out.append(f"{field}.url: {p.url} is also the port of devices.{names[p.url]}")
        names[p.url] = p.device
    return out


def rule(p: Port) -> str:
    """The udev rule line for one adapter port."""
    assert p.adapter is not None
    a = p.adapter
    keys = ['SUBSYSTEM=="tty"', f'ATTRS{{idVendor}}=="{a.vendor_id}"',
            f'ATTRS{{idProduct}}=="{a.product_id}"']
    if a.serial_number is not None:
        keys.append(f'ATTRS{{serial}}=="{a.serial_number}"')
    if a.usb_port is not None:
        keys.append(f'KERNELS=="{a.usb_port}"')
    if a.interface is not None:
        keys.append(f'ENV{{ID_USB_INTERFACE_NUM}}=="{a.interface:02x}"')
    keys += [f'SYMLINK+="{p.url.removeprefix("/dev/")}"', 'GROUP="dialout"', 'MODE="0660"']
    return ", ".join(keys)


def render_rules(cfg: SiteConfig) -> str:
    """The whole rules file for ``cfg``; raises :class:`UdevError` listing every problem."""
    found = problems(cfg)
    if found:
        raise UdevError(found)
    lines = [f"# {RULES_PATH} — serial port names for room {cfg.site.id}.",
             "# Generated by `diemcau-agent udev-rules` from the site file's serial.adapter",
             "# sections: do not edit; change the site file and run the installer again.",
             "# Check: ls -l " + " ".join(p.url for p in ports(cfg) if p.kind == "adapter")]
    for p in ports(cfg):
        label = cfg.devices[p.device].label or p.device
        if p.kind == "adapter":
            lines += ["", f"# {p.device} ({label})", rule(p)]
        else:
            why = {"pi_uart": "the Pi's own UART", "stable": "a name udev already keeps stable",
                   "network": "a network port"}[p.kind]
            lines += ["", f"# {p.device} ({label}): {p.url} is {why}: no rule needed"]
    return "\n".join(lines) + "\n"
