"""The installer's refusals, its uninstall, and the restart it defers while a window locks the
room (asked of a real running agent over its control socket)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agent.config import parse_config
from agent.control import request
from agent.core.events import Command, ScheduleReceived, Window
from agent.install import pending
from tests.agent.harness import running
from tests.install.sites import DIFFERENT, REFERENCE, ROOT
from tests.store.test_deploy import (
    install,
    listing,
    make_bundle,
    make_source,
    site_with_adapters,
    snapshot,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("src"))


def test_a_site_without_adapter_identities_is_refused_and_nothing_changes(
        tmp_path: Path, source: Path) -> None:
    target = tmp_path / "root"
    target.mkdir()
    r = install(source, "--root", str(target), "--site", str(REFERENCE))
    assert r.returncode != 0
    assert "devices.codec.serial.adapter: missing" in r.stderr
    assert "diemcau-agent adapters --write" in r.stderr
    assert "refused" in r.stderr and "nothing else was changed" in r.stderr
    assert listing(target) == []


def test_a_bundle_for_another_room_is_refused(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "root"
    target.mkdir()
    r = install(source, "--root", str(target), "--site", str(site_with_adapters(tmp_path)),
                "--bundle", str(make_bundle(tmp_path / "bundle", "vq-other")))
    assert r.returncode != 0
    assert "this bundle is for room vq-other, the site file is room vq-tan-doan" in r.stderr
    assert listing(target) == []


def test_no_site_at_all_is_refused(tmp_path: Path, source: Path) -> None:
    r = install(source, "--root", str(tmp_path))
    assert r.returncode != 0 and "no site file: give --site FILE" in r.stderr


def test_a_device_on_the_pis_uart_needs_no_adapter(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "root"
    boot = target / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "cmdline.txt").write_text("console=serial0,115200 console=tty1 rootwait\n")
    site = tmp_path / "lb-khac.yaml"
    site.write_text(DIFFERENT)
    r = install(source, "--root", str(target), "--site", str(site), "--model", "pi4")
    assert r.returncode == 0, r.stderr
    config = (boot / "config.txt").read_text()
    for line in ("gpio=13,19=op,dh", "gpio=5,6=op,dl", "enable_uart=1", "dtoverlay=disable-bt"):
        assert line in config.splitlines()
    assert "dtparam=uart0=on" not in config
    # the UART is the codec's now: no kernel console on it
    assert (boot / "cmdline.txt").read_text() == "console=tty1 rootwait\n"


def test_uninstall_keeps_config_and_state_unless_purged(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "root"
    boot = target / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text("[all]\narm_64bit=1\n")
    r = install(source, "--root", str(target), "--site", str(site_with_adapters(tmp_path)),
                "--bundle", str(make_bundle(tmp_path / "bundle")))
    assert r.returncode == 0, r.stderr
    state = target / "var/lib/diemcau"
    state.mkdir(parents=True)
    (state / "outbox.sqlite").write_bytes(b"events not yet delivered")
    kept = {p: v for p, v in snapshot(target).items()
            if p.startswith(("etc/diemcau", "var/lib/diemcau"))}
    assert "etc/diemcau/site.yaml" in kept and "etc/diemcau/credentials.yaml" in kept

    r = install(source, "--root", str(target), "--uninstall")
    assert r.returncode == 0, r.stderr
    assert "kept: /etc/diemcau (--purge removes it)" in r.stdout
    after = snapshot(target)
    for gone in ("opt/diemcau", "usr/local/bin/diemcau-agent",
                 "etc/systemd/system/diemcau-agent.service",
                 "etc/systemd/system/diemcau-agent-restart.timer",
                 "etc/systemd/system/multi-user.target.wants/diemcau-agent.service",
                 "etc/udev/rules.d/99-diemcau-serial.rules",
                 "etc/polkit-1/rules.d/50-diemcau-agent.rules",
                 "etc/modules-load.d/diemcau.conf",
                 "etc/systemd/system.conf.d/diemcau-watchdog.conf",
                 "usr/lib/sysusers.d/diemcau.conf"):
        assert not any(p == gone or p.startswith(gone + "/") for p in after), gone
    assert {p: v for p, v in after.items()
            if p.startswith(("etc/diemcau", "var/lib/diemcau"))} == kept
    assert (boot / "config.txt").read_text() == "[all]\narm_64bit=1\n"   # block removed
    assert "REBOOT NEEDED" in r.stdout

    r = install(source, "--root", str(target), "--uninstall")
    assert r.returncode == 0 and r.stdout.rstrip().endswith("result: unchanged")

    r = install(source, "--root", str(target), "--uninstall", "--purge")
    assert r.returncode == 0, r.stderr
    assert not (target / "etc/diemcau").exists() and not state.exists()


# ---- restart now, or after the lock --------------------------------------------------------

SITE = """\
site: {id: xa-thu, name: "Xã Thử"}
devices:
  codec: {role: codec, relay: {pin: 26}, order: 1, on_delay_s: 0, off_grace_s: 0}
timing: {lead_min: 15}
"""


def fake_systemctl(tmp: Path) -> tuple[str, Path]:
    record = tmp / "systemctl-calls"
    script = tmp / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    script.chmod(0o755)
    return str(script), record


def helper(state: Path, *args: str, systemctl: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.install", "restart", "--state-dir",
                           str(state), *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "DIEMCAU_SYSTEMCTL": systemctl})


def wait_locked(state: Path, locked: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while request(pending.socket_path(state), "status")["state"]["lock"]["locked"] != locked:
        assert time.monotonic() < deadline, f"the room never became locked={locked}"
        time.sleep(0.05)


def test_a_restart_waits_for_the_end_of_the_lock(short_tmp: Path) -> None:
    systemctl, record = fake_systemctl(short_tmp)
    state = short_tmp / "st"
    with running(parse_config(SITE), state) as room:
        now = time.time()
        room.agent.queue.put(ScheduleReceived(
            (Window("s1", "session", now + 60, now + 3600, "Họp"),), "v1"))
        wait_locked(state, True)

        r = helper(state, "--reason", "upgrade 0.2", systemctl=systemctl)
        assert r.returncode == 0, r.stderr
        assert "restart deferred: the room is locked by session s1" in r.stdout
        assert not record.exists(), "the agent was restarted during a lock"
        assert yaml.safe_load(pending.marker(state).read_text())["reason"] == "upgrade 0.2"

        r = helper(state, "--if-pending", systemctl=systemctl)   # the timer, still locked
        assert "restart deferred" in r.stdout and not record.exists()

        room.agent.queue.put(Command("c1", "complete_window", {"window_id": "s1"}))
        wait_locked(state, False)
        r = helper(state, "--if-pending", systemctl=systemctl)   # the timer, lock over
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("restarted diemcau-agent.service (upgrade 0.2)")
        assert record.read_text() == "restart diemcau-agent.service\n"
        assert not pending.marker(state).exists()

        r = helper(state, "--if-pending", systemctl=systemctl)
        assert r.stdout.strip() == "no restart pending"
        assert record.read_text() == "restart diemcau-agent.service\n"


def test_no_agent_running_means_restart_now(short_tmp: Path) -> None:
    systemctl, record = fake_systemctl(short_tmp)
    r = helper(short_tmp, systemctl=systemctl)
    assert r.returncode == 0 and r.stdout.startswith("restarted diemcau-agent.service")
    assert record.read_text() == "restart diemcau-agent.service\n"


def test_a_failing_restart_is_reported(short_tmp: Path) -> None:
    r = helper(short_tmp, systemctl="false")
    assert r.returncode == 1 and "systemctl restart diemcau-agent.service failed" in r.stderr
