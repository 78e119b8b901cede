"""Site config: each kind of mistake gets its message with field and line; secrets never shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import ConfigError, json_schema, load_config, parse_config

SITES = Path(__file__).resolve().parents[2] / "firmware_config" / "sites"

GOOD = """\
site: {id: xa-test, name: "Xã Thử"}
devices:
  codec: {role: codec, relay: {pin: 26}, order: 1}
  camera: {role: camera, relay: {pin: 20}, order: 2}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    return e.value.problems


@pytest.mark.parametrize("path", sorted(SITES.glob("*.yaml")))
def test_shipped_examples_are_valid(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.devices_in_order()[0] == "codec"


def test_real_room_is_the_waveshare_hat() -> None:
    cfg = load_config(SITES / "vq-tan-doan.yaml")
    assert [(cfg.devices[n].relay.pin, cfg.devices[n].relay.active_high)
            for n in cfg.devices_in_order()] == [(26, False), (20, False), (21, False)]


@pytest.mark.parametrize("text,expected", [
    ("site: {id: xa-test}\ndevices: {}\n",
     ["site.name: required field is missing (line 1)",
      "devices: Dictionary should have at least 1 item after validation, not 0 (line 2)"]),
    (GOOD.replace("pin: 20", "pin: 26"),
     ["devices.camera.relay.pin: BCM 26 is already used by devices.codec.relay.pin (line 4)"]),
    (GOOD.replace("order: 2", "order: 1"),
     ["devices.camera.order: 1 is also the order of 'codec'; each device needs its own place "
      "(line 4)"]),
    (GOOD.replace("pin: 20", "pin: 40"),
     ["devices.camera.relay.pin: Input should be less than or equal to 27 (line 4)"]),
    (GOOD + "buton: {pin: 16}\n",
     ["buton: unknown field (check its spelling and indentation) (line 5)"]),
    (GOOD.replace("xa-test", "Xã Test"),
     ["site.id: must be 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit "
      "(it becomes part of MQTT topics) (line 1)"]),
    (GOOD + "status_led: {kind: rgb, pins: {red: 17, green: 27}}\n",
     ["status_led.pins.blue: required field is missing (line 5)"]),
    (GOOD + "button: {pin: 20}\n",
     ["button.pin: BCM 20 is already used by devices.camera.relay.pin (line 5)"]),
    (GOOD + "timing: {lead_min: -5}\n",
     ["timing.lead_min: Input should be greater than or equal to 0 (line 5)"]),
    (GOOD + "support: [{name: A, role: B, phone: 'call me'}]\n",
     ["support.0.phone: String should match pattern '^\\+?[0-9 ().-]{6,20}$' (line 5)"]),
    (GOOD.replace("role: camera", "role: projector"),
     ["devices.camera.role: Input should be 'codec', 'camera', 'amplifier', 'display' or "
      "'other' (line 4)"]),
    ("site: [unclosed\n", None),
    ("- just\n- a list\n", ["(file): <config> must be a YAML mapping with 'site' and 'devices'"]),
])
def test_each_mistake_has_its_message(text: str, expected: list[str] | None) -> None:
    found = problems(text)
    if expected is None:
        assert len(found) == 1 and found[0].startswith("(file): not valid YAML")
        assert "line 2" in found[0] or "line 1" in found[0]
    else:
        assert found == expected


def test_every_problem_listed_at_once() -> None:
    text = GOOD.replace("pin: 20", "pin: 26").replace("order: 2", "order: 1") + "oops: 1\n"
    found = problems(text)
    assert len(found) == 3


SECRET = "s3cr3t-Pa55w0rd-xyz"


def test_secrets_never_in_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    creds = tmp_path / "credentials.yaml"
    creds.write_text(f"username: xa-test\npassword: {SECRET}\n")
    cfg_path = tmp_path / "site.yaml"
    cfg_path.write_text(GOOD + f"broker: {{host: example.invalid, credentials_file: {creds}}}\n")
    cfg = load_config(cfg_path)
    c = cfg.broker.credentials()
    assert c is not None and c.password.get_secret_value() == SECRET
    assert SECRET not in repr(cfg) and SECRET not in repr(c) and SECRET not in str(c)
    assert main(["check-config", str(cfg_path)]) == 0
    # A password placed in the config by mistake is reported without echoing it.
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + f"broker: {{host: h, password: {SECRET}, port: {SECRET}}}\n")
    assert main(["check-config", str(bad)]) == 2
    # A malformed credentials file is named, its content is not shown.
    creds.write_text(f"user: xa-test\npass: {SECRET}\n")
    assert main(["check-config", str(cfg_path)]) == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "broker.password: unknown field" in out.err
    assert "broker.port: Input should be a valid integer" in out.err
    assert f"{creds} must hold 'username:' and 'password:'" in out.err


def test_run_refuses_bad_config_listing_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("pin: 20", "pin: 26"))
    r = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(bad), "--simulate",
                        "--state-dir", str(tmp_path / "st")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "devices.camera.relay.pin: BCM 26 is already used" in r.stderr


def test_json_schema_is_exported_and_current() -> None:
    schema = json_schema()
    assert schema["title"] == "diemcau site config"
    assert {"site", "devices"} <= set(schema["required"])
    shipped = SITES.parent / "site.schema.json"
    assert json.loads(shipped.read_text()) == schema, (
        "firmware_config/site.schema.json is stale: diemcau-agent schema > it")


def test_relay_pins_not_held_at_boot_are_named(tmp_path: Path) -> None:
    from agent.cli import boot_pin_warnings

    assert boot_pin_warnings(load_config(SITES / "vq-tan-doan.yaml")) == []
    cfg = parse_config(GOOD.replace("pin: 20", "pin: 5"))
    warnings = boot_pin_warnings(cfg)
    assert len(warnings) == 1 and warnings[0].startswith("devices.camera.relay.pin: BCM 5 ")
