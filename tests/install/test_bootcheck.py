"""Reading a whole config.txt: would every relay be held released at boot? check-config
fails (non-zero) when the boot config in place would not; the installer's merge replaces an
older diemcau block and leaves the rest of the file alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.install import bootcfg
from tests.install.sites import DIFFERENT, REFERENCE, ROOT

# What the installer wrote before: the same text for every room, whatever its wiring.
FIXED_TEXT = "[all]\ndtparam=watchdog=on\ngpio=26,20,21=op,dh\ndtoverlay=disable-bt\n"


def check_config(site: Path, boot: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "check-config", str(site),
                           "--boot-config", str(boot), *extra],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_check_config_fails_when_the_fragment_in_place_leaves_relays_unsafe(
        tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(DIFFERENT)
    boot = tmp_path / "config.txt"
    boot.write_text(FIXED_TEXT)
    r = check_config(site, boot, "--model", "pi4")
    assert r.returncode != 0, r.stdout + r.stderr
    assert "NOT SAFE at boot" in r.stderr
    for name, pin, level in (("codec", 5, "dl"), ("camera", 6, "dl"), ("amplifier", 13, "dh"),
                             ("display", 19, "dh")):
        assert (f"devices.{name}.relay.pin: BCM {pin} is not held released at boot "
                f"({boot}: nothing sets it; needs gpio={pin}=op,{level})") in r.stderr
    # the installer's block for this site makes it pass
    boot.write_text(bootcfg.merge(FIXED_TEXT, bootcfg.render_fragment(parse_config(DIFFERENT),
                                                                      "pi4"))[0])
    r = check_config(site, boot, "--model", "pi4")
    assert r.returncode == 0, r.stderr


def test_check_config_passes_the_reference_room_with_its_block(tmp_path: Path) -> None:
    boot = tmp_path / "config.txt"
    boot.write_text(bootcfg.merge("[all]\narm_64bit=1\n",
                                  bootcfg.render_fragment(load_config(REFERENCE)))[0])
    r = check_config(REFERENCE, boot)
    assert r.returncode == 0, r.stderr
    assert "NOT SAFE" not in r.stderr


def test_check_config_names_a_missing_boot_file(tmp_path: Path) -> None:
    r = check_config(REFERENCE, tmp_path / "nope.txt")
    assert r.returncode == 2 and "no such file" in r.stderr


def problems(text: str, model: str | None = "pi4", site: str = DIFFERENT) -> list[str]:
    return bootcfg.check(parse_config(site), text, model)[0]


HELD = "gpio=13,19=op,dh\ngpio=5,6=op,dl\n"


def test_wrong_level_or_input_is_unsafe() -> None:
    assert problems(HELD) == []
    assert problems("gpio=13,19,5,6=op,dh\n")[0].startswith(
        "devices.codec.relay.pin: BCM 5 is not held released at boot (config.txt: it is left "
        "as op,dh; needs gpio=5=op,dl)")
    assert problems(HELD + "gpio=6=ip\n") == [
        "devices.camera.relay.pin: BCM 6 is not held released at boot (config.txt: it is left "
        "as ip,dl; needs gpio=6=op,dl): until the agent starts its coil may switch the device "
        "— run `diemcau-agent boot-config` / the installer"]


def test_ranges_and_later_lines_count() -> None:
    assert problems("gpio=5-6=op,dl\ngpio=13=op\ngpio=13=dh\ngpio=19=op,dh\n") == []
    assert problems("gpio=5-6=op,dl\ngpio=13,19=op,dh\ngpio=13=dl\n")[0].startswith(
        "devices.amplifier.relay.pin: BCM 13 ")


def test_conditional_sections() -> None:
    only_pi5 = "[pi5]\n" + HELD + "[all]\n"
    assert problems(only_pi5, "pi5") == []
    assert len(problems(only_pi5, "pi4")) == 4
    both = problems(only_pi5, None)          # board unknown: both are checked
    assert len(both) == 4 and all(p.endswith("(on a Pi 4)") for p in both)
    assert problems("[none]\n" + HELD) != []
    # a filter that may or may not match this board does not hold a pin for sure
    assert len(problems("[HDMI:1]\n" + HELD)) == 4
    # ... and a pin held for sure, then changed under such a filter, is not safe either
    changed = problems(HELD + "[gpio4=1]\ngpio=5=op,dh\n[all]\n")
    assert len(changed) == 1 and "or changed under a condition" in changed[0]
    assert problems(HELD + "[cm4]\ngpio=5=op,dl\n[all]\n") == []   # the same setting: fine


def test_include_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "extra.txt").write_text(HELD)
    cfg = parse_config(DIFFERENT)
    assert bootcfg.check(cfg, "include extra.txt\n", "pi4", tmp_path)[0] == []
    assert len(bootcfg.check(cfg, "include missing.txt\n", "pi4", tmp_path)[0]) == 4


def test_a_shutdown_overlay_is_a_problem() -> None:
    assert problems(HELD + "dtoverlay=gpio-shutdown,gpio_pin=3\n") == [
        "config.txt: dtoverlay=gpio-shutdown,gpio_pin=3: a shutdown pin handled by the kernel "
        "bypasses the lock; remove it"]
    assert problems(HELD + "#dtoverlay=gpio-shutdown\n") == []


def test_merge_replaces_the_old_block_and_keeps_the_rest() -> None:
    fragment = bootcfg.render_fragment(parse_config(DIFFERENT), "pi4")
    old = ("[all]\narm_64bit=1\ndtoverlay=gpio-poweroff\n# BEGIN diemcau old text\n"
           "gpio=26,20,21=op,dh\n# END diemcau\n[pi4]\nfoo=1\n\n\n")
    merged, notes = bootcfg.merge(old, fragment)
    lines = merged.splitlines()
    assert lines[:5] == ["[all]", "arm_64bit=1",
                         "# disabled by diemcau (bypasses the lock): dtoverlay=gpio-poweroff",
                         "[pi4]", "foo=1"]
    assert lines[5] == "" and lines[6] == bootcfg.BEGIN and lines[-1] == bootcfg.END
    assert "gpio=26,20,21=op,dh" not in merged
    assert notes == ["disabled dtoverlay=gpio-poweroff: it bypasses the lock"]
    assert bootcfg.merge(merged, fragment) == (merged, [])     # again: nothing changes
    assert bootcfg.remove_block(merged) == "\n".join(lines[:5]) + "\n"
    # after a conditional section the block starts with [all]: its lines apply everywhere
    assert problems(merged, None) == []


@pytest.mark.parametrize(("model", "expected"), [
    (b"Raspberry Pi 5 Model B Rev 1.0\x00", "pi5"), (b"Raspberry Pi 4 Model B Rev 1.4\x00", "pi4"),
    (b"Raspberry Pi Compute Module 4 Rev 1.0\x00", "pi4"), (b"Raspberry Pi 3 Model B\x00", None)])
def test_board_detection(tmp_path: Path, model: bytes, expected: str | None) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(model)
    assert bootcfg.detect_model(tmp_path) == expected
