"""The udev rules and the boot config block generated from site files, line by line, for the
example rooms and for a room wired differently; and what they refuse."""

from __future__ import annotations

import pytest

from agent.config import load_config, parse_config
from agent.install import bootcfg, udev
from tests.install.sites import DIFFERENT, REFERENCE, SITES, reference_with_adapters


def active(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


# ---- udev ---------------------------------------------------------------------------------

def test_reference_room_rules_line_by_line() -> None:
    rules = udev.render_rules(parse_config(reference_with_adapters()))
    assert active(rules) == [
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", '
        'ATTRS{serial}=="A10KCODE", SYMLINK+="codec", GROUP="dialout", MODE="0660"',
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="067b", ATTRS{idProduct}=="23a3", '
        'ATTRS{serial}=="CAMERA01", SYMLINK+="camera", GROUP="dialout", MODE="0660"',
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="10c4", ATTRS{idProduct}=="ea60", '
        'ATTRS{serial}=="0001AMPL", SYMLINK+="amplifier", GROUP="dialout", MODE="0660"',
    ]
    assert "# Check: ls -l /dev/codec /dev/camera /dev/amplifier" in rules.splitlines()


def test_different_room_rules_line_by_line() -> None:
    rules = udev.render_rules(parse_config(DIFFERENT))
    assert active(rules) == [
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6011", '
        'ATTRS{serial}=="FT4X2Y9", ENV{ID_USB_INTERFACE_NUM}=="01", '
        'SYMLINK+="diemcau-camera", GROUP="dialout", MODE="0660"',
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", '
        'KERNELS=="1-1.3", SYMLINK+="diemcau-amplifier", GROUP="dialout", MODE="0660"',
    ]
    assert "# codec (codec): /dev/ttyAMA0 is the Pi's own UART: no rule needed" in rules


@pytest.mark.parametrize("site", ["vq-tan-doan.yaml", "sim-room.yaml"])
def test_example_sites_without_adapters_are_refused_with_the_fix(site: str) -> None:
    cfg = load_config(SITES / site)
    with pytest.raises(udev.UdevError) as e:
        udev.render_rules(cfg)
    assert [p.split(":", 1)[0] for p in e.value.problems] == [
        "devices.codec.serial.adapter", "devices.camera.serial.adapter",
        "devices.amplifier.serial.adapter"]
    assert all("diemcau-agent adapters --write SITE --device" in p for p in e.value.problems)


def test_unstable_and_duplicate_ports_are_refused() -> None:
    text = reference_with_adapters().replace("url: /dev/camera", "url: /dev/ttyUSB1")
    text = text.replace('"CAMERA01"', '"A10KCODE"').replace('"067b"', '"0403"', 1)
    text = text.replace('product_id: "23a3"', 'product_id: "6001"')
    problems = udev.problems(parse_config(text))
    assert problems[0].startswith("devices.camera.serial.url: /dev/ttyUSB1 is numbered by the "
                                  "kernel")
    text2 = reference_with_adapters().replace('"CAMERA01"', '"A10KCODE"') \
        .replace('vendor_id: "067b", product_id: "23a3"', 'vendor_id: "0403", product_id: "6001"')
    assert udev.problems(parse_config(text2)) == [
        "devices.camera.serial.adapter: the same adapter as devices.codec (one port cannot be "
        "two devices; a multi-port adapter needs 'interface')"]


def test_an_identity_udev_could_misread_is_a_config_error() -> None:
    from agent.config import ConfigError

    bad = reference_with_adapters().replace('"A10KCODE"', '"A10*KC"')
    with pytest.raises(ConfigError) as e:
        parse_config(bad)
    assert any(p.startswith("devices.codec.serial.adapter.serial_number:")
               for p in e.value.problems)
    unquoted = reference_with_adapters().replace('vendor_id: "0403"', "vendor_id: 0403")
    with pytest.raises(ConfigError) as e:
        parse_config(unquoted)
    assert any("write the id in quotes" in p for p in e.value.problems)
    nothing = reference_with_adapters().replace(', serial_number: "A10KCODE"', "")
    with pytest.raises(ConfigError) as e:
        parse_config(nothing)
    assert any("serial_number or usb_port is needed" in p for p in e.value.problems)


# ---- boot config --------------------------------------------------------------------------

REFERENCE_ACTIVE = ["[all]", "dtparam=watchdog=on", "gpio=26,20,21=op,dh"]


@pytest.mark.parametrize("model", ["pi4", "pi5", "any"])
def test_reference_room_fragment_line_by_line(model: str) -> None:
    fragment = bootcfg.render_fragment(load_config(REFERENCE), model)
    assert active(fragment) == REFERENCE_ACTIVE   # no UART device: same on every board
    assert "gpio-shutdown" not in "\n".join(active(fragment))
    assert any("NEVER add dtoverlay=gpio-shutdown" in ln for ln in fragment.splitlines())


def test_sim_room_fragment_line_by_line() -> None:
    fragment = bootcfg.render_fragment(load_config(SITES / "sim-room.yaml"))
    assert active(fragment) == REFERENCE_ACTIVE


def test_shipped_example_fragment_is_the_generated_one() -> None:
    shipped = (SITES.parent / "boot/config.txt.fragment").read_text()
    assert shipped == bootcfg.render_fragment(load_config(REFERENCE)), (
        "firmware_config/boot/config.txt.fragment is stale: diemcau-agent boot-config "
        "firmware_config/sites/vq-tan-doan.yaml > it")


@pytest.mark.parametrize(("model", "uart"), [
    ("pi4", ["enable_uart=1", "dtoverlay=disable-bt"]),
    ("pi5", ["dtparam=uart0=on"]),
    ("any", ["[pi4]", "enable_uart=1", "dtoverlay=disable-bt", "[pi5]", "dtparam=uart0=on",
             "[all]"]),
])
def test_different_room_fragment_line_by_line(model: str, uart: list[str]) -> None:
    cfg = parse_config(DIFFERENT)
    fragment = bootcfg.render_fragment(cfg, model)
    # active-low 13 (NO contact) and the relay-only display on 19: high; active-high 5, 6: low
    assert active(fragment) == ["[all]", "dtparam=watchdog=on", "gpio=13,19=op,dh",
                                "gpio=5,6=op,dl", *uart]
    problems, warnings = bootcfg.check(cfg, fragment, None if model == "any" else model)
    assert problems == [] and warnings == []
    comments = fragment.splitlines()
    assert any("camera     BCM 6   active high, NO contact: pin low (dl), device OFF during "
               "boot" in ln for ln in comments)


def test_a_pi4_block_on_a_pi5_leaves_the_uart_off() -> None:
    cfg = parse_config(DIFFERENT)
    problems, warnings = bootcfg.check(cfg, bootcfg.render_fragment(cfg, "pi4"), "pi5")
    assert problems == []
    assert warnings == ["dtparam=uart0=on missing: codec on the Pi's UART will not answer"]


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of pi4, pi5, any"):
        bootcfg.render_fragment(parse_config(DIFFERENT), "pi3")
