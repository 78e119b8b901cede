"""``diemcau-agent adapters``: pyserial's port list shaped into adapter identities, the one a
field engineer names picked out, and written into the site file without touching the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from serial.tools.list_ports_common import ListPortInfo

from agent.config import ConfigError, parse_config
from agent.install import adapters, udev
from agent.install.yamledit import BUNDLE_NOTE, EditError, set_broker_section, set_serial_port
from tests.install.sites import DIFFERENT, REFERENCE, ROOT


def port(tty: str, vid: int, pid: int, serial: str | None, location: str,
         product: str = "USB Serial") -> ListPortInfo:
    """What pyserial's sysfs reader fills in for a USB tty."""
    info = ListPortInfo(tty, skip_link_detection=True)
    info.vid, info.pid, info.serial_number, info.location = vid, pid, serial, location
    info.manufacturer, info.product = "FTDI", product
    info.apply_usb_info()
    return info


PLUGGED = [
    port("/dev/ttyUSB0", 0x0403, 0x6001, "A10KCODE", "1-1.1"),
    port("/dev/ttyUSB1", 0x0403, 0x6011, "FT4X2Y9", "1-1.2:1.0", "Quad RS232-HS"),
    port("/dev/ttyUSB2", 0x0403, 0x6011, "FT4X2Y9", "1-1.2:1.1", "Quad RS232-HS"),
    port("/dev/ttyUSB3", 0x1a86, 0x7523, None, "1-1.3"),
    port("/dev/ttyUSB4", 0x067b, 0x2303, "0123", "1-1.4"),   # two clones, one serial
    port("/dev/ttyUSB5", 0x067b, 0x2303, "0123", "1-2"),
    ListPortInfo("/dev/ttyAMA0", skip_link_detection=True),    # not USB: not an adapter
]


def found() -> list[adapters.Adapter]:
    return adapters.list_adapters(lambda: PLUGGED)


def test_listing_shapes_pyserials_ports() -> None:
    a = found()
    assert [x.tty for x in a] == [f"/dev/ttyUSB{i}" for i in range(5)] + ["/dev/ttyUSB5"]
    quad = a[2]
    assert (quad.vendor_id, quad.product_id, quad.serial_number, quad.interface,
            quad.usb_port, quad.multi_port) == ("0403", "6011", "FT4X2Y9", 1, "1-1.2", True)
    assert a[0].interface is None and not a[0].multi_port
    table = adapters.describe(a)
    assert table.splitlines()[0].split() == ["tty", "vendor:product", "serial", "intf",
                                             "usb", "port", "product"]
    assert "(none: by USB port)" in table


def test_pick_by_tty_serial_or_serial_and_interface() -> None:
    a = found()
    assert adapters.pick(a, "ttyUSB0").serial_number == "A10KCODE"
    assert adapters.pick(a, "/dev/ttyUSB3").usb_port == "1-1.3"
    assert adapters.pick(a, "A10KCODE").tty == "/dev/ttyUSB0"
    assert adapters.pick(a, "FT4X2Y9:1").tty == "/dev/ttyUSB2"
    with pytest.raises(adapters.AdapterError, match="2-port adapter: choose one of "
                       "/dev/ttyUSB1 = FT4X2Y9:0, /dev/ttyUSB2 = FT4X2Y9:1"):
        adapters.pick(a, "FT4X2Y9")
    with pytest.raises(adapters.AdapterError, match="2 adapters report serial number '0123'"):
        adapters.pick(a, "0123")
    with pytest.raises(adapters.AdapterError, match="no adapter plugged in is 'NOPE'"):
        adapters.pick(a, "NOPE")


def test_identities() -> None:
    a = {x.tty: x for x in found()}
    assert a["/dev/ttyUSB0"].identity() == {"vendor_id": "0403", "product_id": "6001",
                                            "serial_number": "A10KCODE"}
    assert a["/dev/ttyUSB2"].identity() == {"vendor_id": "0403", "product_id": "6011",
                                            "serial_number": "FT4X2Y9", "interface": 1}
    assert a["/dev/ttyUSB3"].identity() == {"vendor_id": "1a86", "product_id": "7523",
                                            "usb_port": "1-1.3"}
    clone = a["/dev/ttyUSB4"]
    assert not adapters.serial_is_unique(clone, found())
    assert clone.identity(serial_unique=False) == {"vendor_id": "067b", "product_id": "2303",
                                                   "usb_port": "1-1.4"}


def test_write_records_the_adapters_and_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    original = REFERENCE.read_text()
    site.write_text(original)
    site.chmod(0o640)
    lines = adapters.write_identities(site, [("codec", "A10KCODE"), ("camera", "ttyUSB2"),
                                             ("amplifier", "ttyUSB4")], found())
    assert lines == [
        "codec: /dev/codec = /dev/ttyUSB0 (0403:6001, serial A10KCODE)",
        "camera: /dev/camera = /dev/ttyUSB2 (0403:6011, serial FT4X2Y9, interface 1)",
        "amplifier: /dev/amplifier = /dev/ttyUSB4 (067b:2303, USB port 1-1.4 (label it: the "
        "name follows the port))"]
    new = site.read_text()
    assert site.stat().st_mode & 0o777 == 0o640
    changed = [(a, b) for a, b in zip(original.splitlines(), new.splitlines(), strict=True)
               if a != b]
    assert changed == [
        ("    serial: {url: /dev/codec, baudrate: 115200}    # udev name: diemcau-agent "
         "adapters --write",
         '    serial: {url: /dev/codec, baudrate: 115200, adapter: {vendor_id: "0403", '
         'product_id: "6001", serial_number: "A10KCODE"}}    # udev name: diemcau-agent '
         'adapters --write'),
        ("    serial: {url: /dev/camera, baudrate: 9600}",
         '    serial: {url: /dev/camera, baudrate: 9600, adapter: {vendor_id: "0403", '
         'product_id: "6011", serial_number: "FT4X2Y9", interface: 1}}'),
        ("    serial: {url: /dev/amplifier, baudrate: 9600}",
         '    serial: {url: /dev/amplifier, baudrate: 9600, adapter: {vendor_id: "067b", '
         'product_id: "2303", usb_port: "1-1.4"}}')]
    rules = udev.render_rules(parse_config(new))
    assert 'ENV{ID_USB_INTERFACE_NUM}=="01", SYMLINK+="camera"' in rules
    # written again with the same adapters: the same file
    adapters.write_identities(site, [("codec", "A10KCODE")], found())
    assert site.read_text() == new


def test_block_style_serial_and_a_kernel_name_get_a_stable_name(tmp_path: Path) -> None:
    text = DIFFERENT.replace("url: /dev/diemcau-amplifier", "url: /dev/ttyUSB3")
    site = tmp_path / "site.yaml"
    site.write_text(text)
    adapters.write_identities(site, [("amplifier", "ttyUSB0")], found())
    new = site.read_text()
    assert ("    serial:\n      url: /dev/diemcau-amplifier\n      adapter: {vendor_id: "
            '"0403", product_id: "6001", serial_number: "A10KCODE"}\n  display:') in new
    before, after = yaml.safe_load(text), yaml.safe_load(new)
    before["devices"]["amplifier"]["serial"] = after["devices"]["amplifier"]["serial"]
    assert before == after


def test_block_style_without_adapter_gets_one_inserted() -> None:
    text = "site: {id: a-b, name: X}\ndevices:\n  codec:\n    role: codec\n    relay: {pin: 5}\n" \
           "    order: 1\n    driver: generic_line\n    serial:\n      url: /dev/codec\n" \
           "      baudrate: 9600  # measured\n    poll_s: 5\n"
    new = set_serial_port(text, "codec", "/dev/codec", {"vendor_id": "0403",
                                                        "product_id": "6001",
                                                        "serial_number": "X1"})
    assert new == text.replace("      baudrate: 9600  # measured\n",
                               "      baudrate: 9600  # measured\n      adapter: {vendor_id: "
                               '"0403", product_id: "6001", serial_number: "X1"}\n')


def test_bad_requests_write_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(REFERENCE.read_text())
    before = site.read_bytes()
    with pytest.raises(adapters.AdapterError, match="no device 'projector'"):
        adapters.write_identities(site, [("projector", "ttyUSB0")], found())
    with pytest.raises(adapters.AdapterError, match="no adapter plugged in"):
        adapters.write_identities(site, [("codec", "ttyUSB0"), ("camera", "ZZZ")], found())
    assert site.read_bytes() == before
    site.write_text(REFERENCE.read_text().replace("order: 2", "order: 1"))
    with pytest.raises(ConfigError):
        adapters.write_identities(site, [("codec", "ttyUSB0")], found())
    with pytest.raises(EditError, match="no serial port"):
        set_serial_port(DIFFERENT, "display", "/dev/x", {"vendor_id": "0403"})


def test_cli_with_nothing_plugged_in(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(REFERENCE.read_text())
    r = subprocess.run([sys.executable, "-m", "agent", "adapters", "--write", str(site),
                        "--device", "codec=A10KCODE"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "nothing written" in r.stderr
    assert site.read_text() == REFERENCE.read_text()
    r = subprocess.run([sys.executable, "-m", "agent", "adapters", "--write", str(site),
                        "--device", "codec"], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 2 and "expected DEVICE=SERIAL_OR_TTY" in r.stderr


def test_broker_section_from_the_bundle() -> None:
    bundle = ("broker:\n  host: mqtt.vanquan.local\n  port: 8883\n  credentials_file: "
              "/etc/diemcau/credentials.yaml\n")
    text = REFERENCE.read_text()
    new = set_broker_section(text, bundle)
    assert yaml.safe_load(new)["broker"] == yaml.safe_load(bundle)["broker"]
    assert new.split("\nbroker:")[0] == text.split("\nbroker:")[0] + "\n" + BUNDLE_NOTE
    assert new.split("devices:")[1] == text.split("devices:")[1]
    assert set_broker_section(new, bundle) == new        # idempotent
    no_broker = DIFFERENT
    added = set_broker_section(no_broker, bundle)
    assert added.startswith(f'site: {{id: lb-khac, name: "Xã Khác"}}\n{BUNDLE_NOTE}\nbroker:')
    with pytest.raises(EditError):
        set_broker_section(text, "host: x\n")
