"""``diemcau-agent diagnose``: one archive with what support needs, and no secret in it."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from agent import diagnose
from agent.outbox import Outbox
from tests.install.sites import DIFFERENT, ROOT

BROKER_PASSWORD = "Br0ker-pass-7f3a9c"
DEVICE_PASSWORD = "mk-codec-9x7"
KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDsecretkeymaterial"
KEY = f"-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n"


def room(tmp: Path) -> diagnose.Options:
    etc = tmp / "etc/diemcau"
    (etc / "tls").mkdir(parents=True)
    (etc / "tls/ca.crt").write_text("not really a certificate\n")
    (etc / "tls/lb-khac.key").write_text(KEY)
    (etc / "credentials.yaml").write_text(f"username: lb-khac\npassword: {BROKER_PASSWORD}\n")
    site = yaml.safe_load(DIFFERENT)
    site["broker"] = {"host": "mqtt.x", "port": 8883,
                      "tls": {"ca_file": str(etc / "tls/ca.crt"),
                              "cert_file": str(etc / "tls/lb-khac.crt"),
                              "key_file": str(etc / "tls/lb-khac.key")},
                      "credentials_file": str(etc / "credentials.yaml")}
    (etc / "site.yaml").write_text(yaml.safe_dump(site, allow_unicode=True))
    state = tmp / "var/lib/diemcau"
    state.mkdir(parents=True)
    (state / "room-state.json").write_text('{"relays": {"codec": true}}')
    box = Outbox(state / "outbox.sqlite", clock=lambda: 1000.0)
    box.append("shutdown_refused", {"window_id": "s1"})
    box.append("device_health", {"device": "codec", "status": "fault"})
    box.close()
    boot = tmp / "boot/config.txt"
    boot.parent.mkdir()
    boot.write_text("[all]\ngpio=13,19=op,dh\n")

    def runner(cmd: Sequence[str]) -> str:
        if cmd[0] == "journalctl":   # a journal that (wrongly) logged every secret
            return (f"Dec 01 agent: connecting as lb-khac password={BROKER_PASSWORD}\n"
                    f"Dec 01 agent: codec login admin/{DEVICE_PASSWORD}\n{KEY}")
        return diagnose.run(cmd)

    return diagnose.Options(config=etc / "site.yaml", state_dir=state, boot_config=boot,
                            udev_rules=tmp / "nope.rules", runner=runner,
                            lister=lambda: [], clock=lambda: 1060.0)


def members(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore
                for m in tar.getmembers() if m.isfile()}


def test_the_archive_holds_no_secret(tmp_path: Path) -> None:
    out = diagnose.collect(room(tmp_path), tmp_path / "diag.tar.gz")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    files = members(out)
    everything = "\n".join(files.values())
    for secret in (BROKER_PASSWORD, DEVICE_PASSWORD, KEY_BODY, "BEGIN PRIVATE KEY"):
        assert secret not in everything, f"{secret!r} is in the archive"
    raw = out.read_bytes()
    with tarfile.open(out) as tar:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            assert BROKER_PASSWORD.encode() not in data and KEY_BODY.encode() not in data
    assert BROKER_PASSWORD.encode() not in raw
    # the journal is there, scrubbed
    assert "connecting as lb-khac password=***" in files["journal.txt"]
    assert "codec login admin/***" in files["journal.txt"]


def test_the_archive_holds_what_support_needs(tmp_path: Path) -> None:
    files = members(diagnose.collect(room(tmp_path), tmp_path / "diag.tar.gz"))
    assert {"summary.txt", "config/site.yaml", "config/check.txt", "config/files.txt",
            "boot/config.txt", "state/room-state.json", "state/outbox.json", "status.json",
            "journal.txt", "pins.txt", "serial.json", "systemd.txt",
            "udev/99-diemcau-serial.rules"} <= set(files)
    site = yaml.safe_load(files["config/site.yaml"])
    assert site["devices"]["codec"]["settings"] == {"username": "admin", "password": "***"}
    assert site["site"]["id"] == "lb-khac"
    outbox = json.loads(files["state/outbox.json"])
    assert outbox["pending"] == 2 and outbox["oldest_age_s"] == 60.0
    assert outbox["pending_by_kind"] == {"shutdown_refused": 1, "device_health": 1}
    assert "relay codec: BCM 5" in files["pins.txt"] and "button: BCM 16" in files["pins.txt"]
    serial = json.loads(files["serial.json"])
    assert serial["adapters"] == []
    assert serial["ports"]["camera"]["adapter"]["serial_number"] == "FT4X2Y9"
    check = files["config/check.txt"]
    assert "boot PROBLEM: devices.codec.relay.pin: BCM 5 is not held released" in check
    assert "lb-khac.key" in files["config/files.txt"]
    assert "diemcau-agent" in files["summary.txt"] and "pyserial" in files["summary.txt"]
    status = json.loads(files["status.json"])
    assert status["ok"] is False and "does not answer" in status["error"]
    assert json.loads(files["state/room-state.json"]) == {"relays": {"codec": True}}


def test_an_invalid_site_file_still_gives_an_archive(tmp_path: Path) -> None:
    opts = room(tmp_path)
    text = opts.config.read_text().replace("order: 2", "order: 1")
    opts.config.write_text(text)
    files = members(diagnose.collect(opts, tmp_path / "diag.tar.gz"))
    assert files["config/check.txt"].startswith("site file INVALID:")
    assert DEVICE_PASSWORD not in "\n".join(files.values())


def test_the_command(tmp_path: Path) -> None:
    opts = room(tmp_path)
    out = tmp_path / "d.tar.gz"
    r = subprocess.run([sys.executable, "-m", "agent", "diagnose", "--out", str(out),
                        "--config", str(opts.config), "--state-dir", str(opts.state_dir),
                        "--boot-config", str(opts.boot_config)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"send this file to support: {out}" in r.stdout
    files = members(out)
    assert BROKER_PASSWORD not in "\n".join(files.values())
