"""The fleet playbook: ``ansible-playbook --syntax-check``, ``ansible-lint`` (production
profile), and a real run against a local ``--root`` tree: the first run installs, the second
changes nothing (so nothing is restarted)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.install.sites import ROOT
from tests.store.test_deploy import make_bundle, make_source, site_with_adapters

ANSIBLE = ROOT / "deploy/ansible"
BIN = Path(sys.executable).parent


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "ANSIBLE_LOCAL_TEMP": "/tmp",
            "ANSIBLE_HOME": str(Path("/tmp") / "diemcau-ansible-home")}


def test_syntax_check() -> None:
    r = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventory.example.yml",
                        "site.yml", "--syntax-check"], cwd=ANSIBLE, capture_output=True,
                       text=True, timeout=120, env=env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "playbook: site.yml" in r.stdout


def test_lint_production_profile() -> None:
    r = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production",
                        "-f", "pep8", "site.yml", "roles"], cwd=ANSIBLE, capture_output=True,
                       text=True, timeout=300, env=env())
    assert r.returncode == 0, r.stdout + r.stderr


def recap(out: str) -> dict[str, int]:
    m = re.search(r"vq-tan-doan\s*:\s*(.+)", out.split("PLAY RECAP", 1)[1])
    assert m, out
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[1])}


def test_local_run_installs_then_changes_nothing(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    site = site_with_adapters(tmp_path)
    bundle = make_bundle(tmp_path / "bundle")
    target = tmp_path / "root"
    (target / "boot/firmware").mkdir(parents=True)
    (target / "boot/firmware/config.txt").write_text("[all]\narm_64bit=1\n")
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "diemcau_become": False, "diemcau_room_source_dir": str(source),
            "diemcau_room_site_file": str(site), "diemcau_room_bundle_dir": str(bundle),
            "diemcau_room_stage": str(tmp_path / "stage"),
            "diemcau_room_root": str(target),
            "diemcau_room_installer_args": ["--python", sys.executable]}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"diemcau_rooms": {"hosts": {"vq-tan-doan": host}}}))

    def play() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory),
                               "site.yml"], cwd=ANSIBLE, capture_output=True, text=True,
                              timeout=300, env=env())

    first = play()
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first.stdout)["changed"] > 0 and recap(first.stdout)["failed"] == 0
    installed = yaml.safe_load((target / "etc/diemcau/site.yaml").read_text())
    assert installed["broker"]["host"] == "mqtt.vanquan.local"
    assert 'SYMLINK+="codec"' in (target / "etc/udev/rules.d/99-diemcau-serial.rules").read_text()
    assert "gpio=26,20,21=op,dh" in (target / "boot/firmware/config.txt").read_text()
    assert "RUNNING HANDLER" in first.stdout   # notified; skipped: an image has no agent

    second = play()
    assert second.returncode == 0, second.stdout + second.stderr
    counts = recap(second.stdout)
    assert counts["changed"] == 0 and counts["failed"] == 0, second.stdout
    assert "RUNNING HANDLER" not in second.stdout
    assert json.dumps(counts)
