"""Site files for the installer's tests: the example rooms, and one wired differently."""

from __future__ import annotations

from pathlib import Path

from agent.install.yamledit import set_serial_port

ROOT = Path(__file__).resolve().parents[2]
SITES = ROOT / "firmware_config/sites"
REFERENCE = SITES / "vq-tan-doan.yaml"

# The reference room with its three FTDI adapters identified (as `adapters --write` does).
IDENTITIES = {
    "codec": {"vendor_id": "0403", "product_id": "6001", "serial_number": "A10KCODE"},
    "camera": {"vendor_id": "067b", "product_id": "23a3", "serial_number": "CAMERA01"},
    "amplifier": {"vendor_id": "10c4", "product_id": "ea60", "serial_number": "0001AMPL"},
}


def reference_with_adapters() -> str:
    text = REFERENCE.read_text()
    for device, ident in IDENTITIES.items():
        text = set_serial_port(text, device, f"/dev/{device}", ident)
    return text


# Relays on other pins and polarities; the codec on the Pi's own UART, the camera on port 2 of
# a 4-port FTDI, the amplifier on a CH340 without a serial number (matched by its USB port).
DIFFERENT = """\
site: {id: lb-khac, name: "Xã Khác"}
devices:
  codec:
    role: codec
    relay: {pin: 5, active_high: true, contact: nc}
    order: 1
    driver: cisco_xapi
    serial: {url: /dev/ttyAMA0, baudrate: 115200}
    settings: {username: admin, password: "mk-codec-9x7"}
  camera:
    role: camera
    relay: {pin: 6, active_high: true, contact: no}
    order: 2
    driver: sony_visca
    serial:
      url: /dev/diemcau-camera
      baudrate: 9600
      adapter: {vendor_id: "0403", product_id: "6011", serial_number: "FT4X2Y9", interface: 1}
  amplifier:
    role: amplifier
    relay: {pin: 13, active_high: false, contact: no}
    order: 3
    driver: extron_sis
    serial:
      url: /dev/diemcau-amplifier
      adapter: {vendor_id: "1a86", product_id: "7523", usb_port: "1-1.3"}
  display:
    role: display
    relay: {pin: 19}
    order: 4
button: {pin: 16}
"""
