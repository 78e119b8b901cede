"""The console config, the roster import and the CLI's refusals: every problem with its field
(and line), bad windows and unknown windows refused with nothing changed."""

from __future__ import annotations

import getpass
import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from broker.local import free_port
from district.cli import main
from district.config import SCHEMA_FILE, ConfigError, json_schema, load_config, parse_config
from district.roster import plan_import
from tests.district.helpers import config_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "district" / "example.yaml"

BAD = """\
organisation:
  name: {en: "No Vietnamese"}
  level: {vi: "tỉnh"}
timezone: Mars/Olympus
broker: {url: "http://x", keepalive_s: 2, colour: blue}
database: {path: /tmp/x.db}
http: {listen: "nowhere"}
rooms:
  - {id: "Bad Id", name: "Xã A"}
  - {id: xa-b, name: ""}
  - {id: xa-c, name: "Xã C", contacts: [{name: "A", phone: "call me"}]}
  - {id: xa-c, name: "Xã C again"}
"""


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.timezone == "Asia/Ho_Chi_Minh"
    assert cfg.room("vq-tan-doan").group == "Cụm Tân Đoàn"
    assert cfg.groups() == {"Cụm Tân Đoàn": ["vq-tan-doan", "vq-trang-cac"]}
    assert cfg.organisation.level.get("en") == "district"


def test_defaults() -> None:
    cfg = parse_config("organisation: {name: {vi: A}, level: {vi: xã}}\n")
    assert cfg.timezone == "Asia/Ho_Chi_Minh" and cfg.rooms == []
    assert (cfg.broker.host, cfg.broker.port) == ("127.0.0.1", 1883)
    assert cfg.broker.session_expiry_s == 604800
    assert cfg.organisation.name.get("en") == "A", "English falls back to Vietnamese"


def test_every_problem_is_listed_with_its_field_and_line() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(BAD)
    got = e.value.problems
    want = [
        "organisation.name.vi: required field is missing (line 2)",
        "timezone: unknown time zone 'Mars/Olympus' (line 4)",
        "broker.url: expected mqtt://HOST:PORT or mqtts://HOST:PORT (line 5)",
        "broker.keepalive_s: Input should be greater than or equal to 5 (line 5)",
        "broker.colour: unknown field (check its spelling and indentation) (line 5)",
        "http.listen: String should match pattern",
        "rooms.0.id: must be 2-63 characters",
        "rooms.1.name: String should have at least 1 character (line 10)",
        "rooms.2.contacts.0.phone: String should match pattern",
        "rooms.3.id: 'xa-c' is already room 2 (line 12)",
    ]
    for w in want:
        assert any(p.startswith(w) for p in got), (w, got)
    assert len(got) == len(want), got


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("rooms: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML.*line"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse_config("- a\n")


def test_no_secret_in_errors_or_repr(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.yaml"
    creds.write_text("username: staff.console\npassword: hunter2-secret\n")
    cfg = parse_config(f"organisation: {{name: {{vi: A}}, level: {{vi: xã}}}}\n"
                       f"broker: {{credentials_file: '{creds}'}}\n")
    c = cfg.broker.credentials()
    assert c is not None and c.password.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(c) and "hunter2" not in repr(cfg)
    creds.write_text("user: x\n")
    with pytest.raises(ConfigError) as e:
        cfg.broker.credentials()
    assert "hunter2" not in str(e.value)


def test_json_schema_is_exported_and_current() -> None:
    schema = json_schema()
    assert schema["title"] == "diemcau district console config"
    assert json.loads(SCHEMA_FILE.read_text()) == schema, (
        "district/console.schema.json is stale: diemcau-district schema > it")
    out = subprocess.run([sys.executable, "-m", "district", "schema"], capture_output=True,
                         timeout=60, check=True)
    assert json.loads(out.stdout) == schema


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "có lỗi" in err and "rooms.3.id: 'xa-c' is already room 2 (line 12)" in err
    assert main(["check-config", "--config", str(EXAMPLE), "--lang", "en"]) == 0
    out = capsys.readouterr()
    assert "Config is valid" in out.out and "credentials_file" in out.err


def _db_digest(db: Path) -> str:
    """Every row of every table: any change to what the console holds shows."""
    con = sqlite3.connect(str(db))
    try:
        return hashlib.sha256("\n".join(con.iterdump()).encode()).hexdigest()
    finally:
        con.close()


def _cfg(tmp_path: Path, rooms: list[str]) -> Path:
    f = tmp_path / "console.yaml"
    f.write_text(config_yaml(free_port(), tmp_path / "c.db", rooms, {"xa-a": "Cụm 1"}))
    return f


def test_bad_windows_are_refused_and_change_nothing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(tmp_path, ["xa-a", "xa-b"])
    base = ["window", "create", "--config", str(cfg), "--kind", "test", "--title", "Thử"]
    assert main([*base, "--start", "2099-01-01T09:00", "--end", "2099-01-01T10:00"]) == 0
    capsys.readouterr()
    before = _db_digest(tmp_path / "c.db")
    assert main([*base, "--start", "2099-01-01T09:00", "--end", "2099-01-01T08:00",
                 "--rooms", "xa-a,xa-z,xa-y"]) == 1
    err = capsys.readouterr().err
    assert "end: phải sau thời điểm bắt đầu" in err
    assert "rooms: 'xa-z' không có trong danh sách điểm cầu" in err
    assert "rooms: 'xa-y' không có" in err
    assert main([*base, "--lang", "en", "--start", "2099-01-01T09:00", "--end",
                 "2099-01-01T10:00", "--rooms", "group:Nope"]) == 1
    assert "no group 'Nope'" in capsys.readouterr().err
    assert main([*base, "--start", "tomorrow", "--end", "2099-01-01T10:00"]) == 1
    assert "start:" in capsys.readouterr().err
    assert _db_digest(tmp_path / "c.db") == before


def test_window_create_prints_its_id_and_group_selection(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(tmp_path, ["xa-a", "xa-b"])
    assert main(["window", "create", "--config", str(cfg), "--kind", "session", "--title",
                 "Họp", "--start", "2099-01-01T09:00", "--end", "2099-01-01T10:00+07:00",
                 "--rooms", "group:Cụm 1"]) == 0
    wid = capsys.readouterr().out.strip()
    assert wid.startswith("session-20990101-0900-")
    assert main(["window", "list", "--config", str(cfg), "--all"]) == 0
    listed = capsys.readouterr().out
    assert wid in listed and "sắp tới" in listed
    assert main(["report", "--config", str(cfg), wid]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [r["site"] for r in rep["rooms"]] == ["xa-a"]
    assert rep["window"]["start"] == "2099-01-01T09:00:00+07:00"


def test_report_for_an_unknown_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(tmp_path, ["xa-a"])
    assert main(["window", "list", "--config", str(cfg)]) == 0
    before = _db_digest(tmp_path / "c.db")
    assert main(["report", "--config", str(cfg), "no-such-window"]) == 1
    assert "lỗi: window: không có khung giờ 'no-such-window'" in capsys.readouterr().err
    assert main(["report", "--config", str(cfg), "--lang", "en", "x", "--format", "csv"]) == 1
    captured = capsys.readouterr()
    assert "error: window: no window 'x'" in captured.err and captured.out == ""
    assert main(["window", "complete", "--config", str(cfg), "x"]) == 1
    assert _db_digest(tmp_path / "c.db") == before


ROSTER = """\
# our roster
organisation:
  name: {vi: "Trung tâm"}
  level: {vi: "tỉnh"}
rooms:
  - id: xa-a
    name: "Xã A"   # keep this comment
http: {listen: "127.0.0.1:8080"}
"""


def test_plan_import_keeps_the_file_and_adds_new_rooms() -> None:
    cfg = parse_config(ROSTER)
    plan = plan_import(ROSTER, cfg, {"xa-a": False, "xa-b": False, "xa-c": True})
    assert plan.added == ["xa-b"] and plan.already == ["xa-a"]
    assert "# keep this comment" in plan.new_text and "# our roster" in plan.new_text
    new = parse_config(plan.new_text)
    assert new.room_ids() == ["xa-a", "xa-b"] and new.room("xa-b").name == "xa-b"
    assert new.http.listen == "127.0.0.1:8080"
    for text in ("organisation: {name: {vi: A}, level: {vi: B}}\n",
                 "organisation: {name: {vi: A}, level: {vi: B}}\nrooms: []\n"):
        p = plan_import(text, parse_config(text), {"xa-z": False})
        assert parse_config(p.new_text).room_ids() == ["xa-z"]


def test_rooms_import_from_the_broker_registry(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from broker.cli import main as broker_main

    bdir = tmp_path / "broker"
    assert broker_main(["--dir", str(bdir), "init", "--name", "thu", "--host", "localhost",
                        "--user", getpass.getuser(), "--no-reload"]) == 0
    for room in ("xa-a", "xa-new", "xa-gone"):
        assert broker_main(["--dir", str(bdir), "--no-reload", "add-room", room]) == 0
    cfg_file = tmp_path / "console.yaml"
    cfg_file.write_text(ROSTER.replace("xa-a\n    name", "xa-gone\n    name"))
    assert broker_main(["--dir", str(bdir), "--no-reload", "revoke-room", "xa-gone"]) == 0
    capsys.readouterr()
    assert main(["rooms", "import", "--config", str(cfg_file), "--broker-dir", str(bdir),
                 "--dry-run"]) == 0
    assert load_config(cfg_file).room_ids() == ["xa-gone"]
    assert main(["rooms", "import", "--config", str(cfg_file), "--broker-dir", str(bdir)]) == 0
    out = capsys.readouterr().out
    assert "xa-gone đã bị thu hồi" in out
    assert load_config(cfg_file).room_ids() == ["xa-gone", "xa-a", "xa-new"]
    assert main(["rooms", "import", "--config", str(cfg_file), "--broker-dir", str(bdir)]) == 0
    assert "Không có điểm cầu mới" in capsys.readouterr().out
    assert main(["rooms", "import", "--config", str(cfg_file), "--broker-dir",
                 str(tmp_path / "nothing")]) == 1
    assert "not a diemcau broker directory" in capsys.readouterr().err
