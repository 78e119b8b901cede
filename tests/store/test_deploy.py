"""Deploy files: the systemd unit, udev rules, boot config fragment and the install script."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy/systemd/diemcau-agent.service"
FRAGMENT = ROOT / "firmware_config/boot/config.txt.fragment"
INSTALL = ROOT / "deploy/install-room.sh"
SITE = ROOT / "firmware_config/sites/vq-tan-doan.yaml"


def unit_settings(path: Path = UNIT) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment; systemd allows repeated keys."""
    out = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(section: str, key: str) -> list[str]:
    return [v for s, k, v in unit_settings() if s == section and k == key]


def one(section: str, key: str) -> str:
    (v,) = values(section, key)
    return v


def test_unit_key_settings() -> None:
    assert one("Service", "Type") == "notify"
    assert one("Service", "NotifyAccess") == "main"
    assert one("Service", "WatchdogSec") == "30"
    assert one("Service", "Restart") == "always"
    assert one("Service", "RestartSec") == "2"
    assert one("Unit", "StartLimitIntervalSec") == "0"  # never give up restarting
    assert one("Service", "User") == "diemcau"
    assert set(one("Service", "SupplementaryGroups").split()) >= {"gpio", "dialout"}
    assert one("Service", "ExecStart") == (
        "/opt/diemcau/.venv/bin/diemcau-agent run --config /etc/diemcau/site.yaml "
        "--state-dir /var/lib/diemcau")
    assert one("Install", "WantedBy") == "multi-user.target"
    assert "network-online.target" not in " ".join(values("Unit", "After"))


def test_unit_hardening_is_consistent() -> None:
    exec_start = one("Service", "ExecStart").split()
    state_dir = exec_start[exec_start.index("--state-dir") + 1]
    assert state_dir == "/var/lib/" + one("Service", "StateDirectory")
    assert one("Service", "ProtectSystem") == "strict"
    writable = " ".join(values("Service", "ReadWritePaths")).split()
    assert state_dir in writable
    # lgpio writes its files in LG_WD: it must be a writable runtime directory
    env = dict(e.split("=", 1) for v in values("Service", "Environment") for e in v.split())
    assert env["LG_WD"] == "/run/" + one("Service", "RuntimeDirectory")
    assert env["LG_WD"] in writable
    assert one("Service", "WorkingDirectory") in writable
    # devices: no private /dev; the GPIO and serial classes allowed read-write
    assert one("Service", "PrivateDevices") == "no"
    assert one("Service", "DevicePolicy") == "closed"
    allowed = {v.split()[0]: v.split()[1] for v in values("Service", "DeviceAllow")}
    for dev in ("char-gpiochip", "char-ttyUSB", "char-ttyACM", "char-ttyAMA"):
        assert allowed.get(dev) == "rw", dev
    # the char-ttyUSB/char-ttyACM majors must exist when the unit starts
    modules = (ROOT / "deploy/modules-load.d/diemcau.conf").read_text().split()
    assert {"usbserial", "cdc_acm"} <= set(modules)
    # agent/clock.py reads adjtimex(2): neither ProtectClock nor the filter may deny it
    assert values("Service", "ProtectClock") in ([], ["no"])
    filters = " ".join(values("Service", "SystemCallFilter")).split()
    assert "adjtimex" in filters and "clock_adjtime" in filters
    assert one("Service", "SystemCallErrorNumber") == "EPERM"  # never SIGSYS the agent
    families = one("Service", "RestrictAddressFamilies").split()
    assert "AF_UNIX" in families  # sd_notify, D-Bus, control socket
    assert one("Service", "NoNewPrivileges") == "yes"


def test_restart_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = []
    for name in ("diemcau-agent-restart.service", "diemcau-agent-restart.timer"):
        text = (ROOT / "deploy/systemd" / name).read_text().replace(
            "ExecStart=/opt/diemcau/.venv/bin/python", "ExecStart=/bin/true")
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    r = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True,
                       text=True, timeout=30, env={**os.environ, "SYSTEMD_LOG_LEVEL": "info"})
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0, out
    assert [ln for ln in out.splitlines() if str(tmp_path) in ln or "Unknown" in ln] == []
    service = (ROOT / "deploy/systemd/diemcau-agent-restart.service").read_text()
    assert "ConditionPathExists=/var/lib/diemcau/restart-pending" in service
    assert "-m agent.install restart --state-dir /var/lib/diemcau --if-pending" in service


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # The real ExecStart does not exist on a build machine; verify everything else.
    text = UNIT.read_text().replace("ExecStart=/opt/diemcau/.venv/bin/diemcau-agent",
                                    "ExecStart=/bin/true")
    unit = tmp_path / "diemcau-agent.service"
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=30, env={**os.environ, "SYSTEMD_LOG_LEVEL": "info"})
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0, out
    problems = [ln for ln in out.splitlines() if str(unit) in ln or "Unknown" in ln]
    assert problems == []


UDEV_TOKEN = re.compile(r'^\s*([A-Z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*$')


def udev_rules(text: str) -> list[list[tuple[str, str, str]]]:
    rules = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = []
        for part in line.split(","):
            m = UDEV_TOKEN.match(part)
            assert m, f"line {n}: cannot parse {part!r}"
            tokens.append(m.groups())
        rules.append(tokens)
    return rules


def test_no_example_udev_rules_ship() -> None:
    # The example with placeholder serial numbers went in as it was and named nothing.
    assert not (ROOT / "deploy/udev").exists()
    assert "99-diemcau-serial.rules" not in INSTALL.read_text().split("RULES=")[0]


def test_generated_udev_rules_syntax() -> None:
    from agent.config import parse_config
    from agent.install.udev import render_rules
    from tests.install.sites import DIFFERENT, reference_with_adapters

    for text in (reference_with_adapters(), DIFFERENT):
        for tokens in udev_rules(render_rules(parse_config(text))):
            keys = {k: (op, v) for k, op, v in tokens}
            assert keys["SUBSYSTEM"] == ("==", "tty")
            assert re.fullmatch(r"[0-9a-f]{4}", keys["ATTRS{idVendor}"][1])
            assert re.fullmatch(r"[0-9a-f]{4}", keys["ATTRS{idProduct}"][1])
            assert "ATTRS{serial}" in keys or "KERNELS" in keys
            assert keys["GROUP"] == ("=", "dialout") and keys["MODE"] == ("=", "0660")
            assert keys["SYMLINK"][0] == "+="


def test_boot_fragment_example() -> None:
    lines = [ln.strip() for ln in FRAGMENT.read_text().splitlines()]
    active = [ln for ln in lines if ln and not ln.startswith("#")]
    for ln in active:
        assert re.fullmatch(r"\[[a-z0-9]+\]|[a-z_]+=[A-Za-z0-9_,=-]+", ln), ln
    assert "dtparam=watchdog=on" in active
    assert not any("gpio-shutdown" in ln or "gpio-poweroff" in ln for ln in active)
    assert any("NEVER" in ln and "gpio-shutdown" in ln for ln in lines)
    # every active-low relay of the reference room is released (driven high) at boot
    gpio = next(ln for ln in active if ln.startswith("gpio="))
    pins_part, _, mode = gpio.removeprefix("gpio=").partition("=")
    assert set(mode.split(",")) == {"op", "dh"}
    site = yaml.safe_load(SITE.read_text())
    relays = [d["relay"] for d in site["devices"].values()]
    assert all(not r["active_high"] and r["contact"] == "nc" for r in relays)
    assert {int(p) for p in pins_part.split(",")} == {r["pin"] for r in relays}


def test_polkit_rule_only_for_the_agent() -> None:
    text = (ROOT / "deploy/polkit/50-diemcau-agent.rules").read_text()
    assert 'subject.user === "diemcau"' in text
    # Only logind's inhibit actions, all of them: a request naming several kinds (as the
    # agent's does, agent/inhibit.py WHAT) is checked as inhibit-handle-lid-switch.
    actions = set(re.findall(r'"(org\.freedesktop\.[a-z0-9.-]+)"', text))
    assert actions == {"org.freedesktop.login1.inhibit-"}
    assert 'action.id.indexOf("org.freedesktop.login1.inhibit-") === 0' in text


def test_polkit_rule_is_valid_javascript(tmp_path: Path) -> None:
    js = tmp_path / "rule.js"
    js.write_text((ROOT / "deploy/polkit/50-diemcau-agent.rules").read_text())
    subprocess.run(["node", "--check", str(js)], check=True, timeout=30)


def test_install_script_syntax() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True, timeout=10)
    assert os.access(INSTALL, os.X_OK)
    assert "PREFIX=/opt/diemcau" in INSTALL.read_text()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small, stable source tree to install from (the working tree changes under our feet
    while others work, and copying it whole would make these tests slow and flaky)."""
    return make_source(tmp_path_factory.mktemp("src"))


def make_source(src: Path) -> Path:
    src.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "pyproject.toml", src / "pyproject.toml")
    shutil.copytree(ROOT / "agent", src / "agent",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "deploy", src / "deploy",
                    ignore=shutil.ignore_patterns("bootstrap.sh", "test.sh", "ansible"))
    shutil.copytree(ROOT / "firmware_config/boot", src / "firmware_config/boot")
    (src / ".venv").mkdir()
    (src / ".git").mkdir()
    return src


def install(source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(source / "deploy/install-room.sh"), "--python",
                           sys.executable, *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def site_with_adapters(where: Path) -> Path:
    from tests.install.sites import reference_with_adapters

    site = where / "vq-tan-doan.yaml"
    site.write_text(reference_with_adapters())
    return site


def test_install_dry_run_changes_nothing(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "root"
    target.mkdir()
    r = install(source, "--dry-run", "--root", str(target), "--site",
                str(site_with_adapters(tmp_path)))
    assert r.returncode == 0, r.stderr
    for step in ("0. checks", "1. packages", "2. user diemcau", "3. code", "4. configuration",
                 "5. systemd unit", "6. boot configuration", "7. enable and start"):
        assert step in r.stdout
    assert "+ ln -sfn /etc/systemd/system/diemcau-agent.service" in r.stdout
    assert "dry run: nothing was changed" in r.stdout
    assert listing(target) == []


def test_install_rejects_bad_arguments(tmp_path: Path, source: Path) -> None:
    assert install(source, "--dry-run", "--frobnicate").returncode != 0
    r = install(source, "--dry-run", "--root", str(tmp_path), "--site", str(tmp_path / "nope.yaml"))
    assert r.returncode != 0 and "no such file" in r.stderr
    r = install(source, "--root", str(tmp_path), "--purge")
    assert r.returncode != 0 and "--purge goes with --uninstall" in r.stderr


def begins(config: str) -> int:
    return sum(ln.startswith("# BEGIN diemcau") for ln in config.splitlines())


def make_bundle(where: Path, site: str = "vq-tan-doan") -> Path:
    (where / "tls").mkdir(parents=True)
    (where / "tls/ca.crt").write_text("CA\n")
    (where / f"tls/{site}.crt").write_text("CERT\n")
    (where / f"tls/{site}.key").write_text("KEY\n")
    (where / f"tls/{site}.key").chmod(0o600)
    (where / "credentials.yaml").write_text(f"username: {site}\npassword: s3cret\n")
    (where / "broker.yaml").write_text(yaml.safe_dump({"broker": {
        "host": "mqtt.vanquan.local", "port": 8883,
        "tls": {"ca_file": "/etc/diemcau/tls/ca.crt",
                "cert_file": f"/etc/diemcau/tls/{site}.crt",
                "key_file": f"/etc/diemcau/tls/{site}.key"},
        "credentials_file": "/etc/diemcau/credentials.yaml"}}, sort_keys=False))
    return where


def snapshot(root: Path) -> dict[str, tuple[bytes | str, int]]:
    """Every file's content (a symlink's target) and mode under ``root``."""
    out: dict[str, tuple[bytes | str, int]] = {}
    for p in root.rglob("*"):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = (os.readlink(p), 0)
        elif p.is_file():
            out[rel] = (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
    return out


def test_install_staged_twice_the_second_run_changes_nothing(tmp_path: Path,
                                                             source: Path) -> None:
    target = tmp_path / "root"
    boot = target / "boot/firmware"
    boot.mkdir(parents=True)
    original = "[all]\narm_64bit=1\ndtoverlay=gpio-shutdown,gpio_pin=3\n"
    (boot / "config.txt").write_text(original)
    (boot / "cmdline.txt").write_text("console=serial0,115200 console=tty1 rootwait\n")
    bundle = make_bundle(tmp_path / "bundle")
    site = site_with_adapters(tmp_path)

    r = install(source, "--root", str(target), "--site", str(site), "--bundle", str(bundle))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "systemctl" not in r.stdout                    # image mode: nothing is called
    assert r.stdout.rstrip().endswith("result: changed")
    etc = target / "etc"
    assert (etc / "systemd/system/diemcau-agent.service").read_text() == UNIT.read_text()
    wants = etc / "systemd/system/multi-user.target.wants/diemcau-agent.service"
    assert os.readlink(wants) == "/etc/systemd/system/diemcau-agent.service"
    assert os.readlink(etc / "systemd/system/timers.target.wants/"
                       "diemcau-agent-restart.timer") == \
        "/etc/systemd/system/diemcau-agent-restart.timer"
    rules = (etc / "udev/rules.d/99-diemcau-serial.rules").read_text()
    assert 'ATTRS{serial}=="A10KCODE", SYMLINK+="codec"' in rules
    installed = yaml.safe_load((etc / "diemcau/site.yaml").read_text())
    assert installed["broker"] == yaml.safe_load((bundle / "broker.yaml").read_text())["broker"]
    assert installed["devices"] == yaml.safe_load(site.read_text())["devices"]
    key = etc / "diemcau/tls/vq-tan-doan.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o640  # root + group diemcau, not others
    assert stat.S_IMODE((etc / "diemcau/credentials.yaml").stat().st_mode) == 0o640
    assert stat.S_IMODE((etc / "diemcau").stat().st_mode) == 0o750
    assert (target / "opt/diemcau/agent/outbox.py").exists()
    assert (target / "usr/lib/sysusers.d/diemcau.conf").exists()
    assert os.readlink(target / "usr/local/bin/diemcau-agent") == (
        "/opt/diemcau/.venv/bin/diemcau-agent")
    assert not (target / "opt/diemcau/.venv").exists()
    assert not (target / "opt/diemcau/.git").exists()

    config = (boot / "config.txt").read_text()
    assert begins(config) == 1 and config.splitlines().count("# END diemcau") == 1
    assert "gpio=26,20,21=op,dh" in config
    assert "\n# disabled by diemcau (bypasses the lock): dtoverlay=gpio-shutdown" in config
    assert (boot / "config.txt.diemcau-orig").read_text() == original
    # no device on the Pi's UART: its console stays
    assert "console=serial0" in (boot / "cmdline.txt").read_text()
    assert "REBOOT NEEDED" in r.stdout

    before = snapshot(target)
    for args in ((), ("--site", str(site), "--bundle", str(bundle))):
        r2 = install(source, "--root", str(target), *args)
        assert r2.returncode == 0, r2.stderr
        assert "unchanged: /boot/firmware/config.txt" in r2.stdout
        assert "REBOOT NEEDED" not in r2.stdout
        assert r2.stdout.rstrip().endswith("result: unchanged"), r2.stdout
        assert snapshot(target) == before


def test_install_updates_an_old_block(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "root"
    boot = target / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(
        "[all]\n# BEGIN diemcau old\ngpio=1=op,dl\n# END diemcau\n[pi4]\nfoo=1\n")
    r = install(source, "--root", str(target), "--site", str(site_with_adapters(tmp_path)))
    assert r.returncode == 0, r.stderr
    config = (boot / "config.txt").read_text()
    assert "gpio=1=op,dl" not in config and "[pi4]\nfoo=1\n" in config
    assert begins(config) == 1
