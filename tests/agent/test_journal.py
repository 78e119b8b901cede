"""The journal: one line per decision or fault at the level an operator filters on, syslog
priorities under journald, never a secret, and a clear error for a bad log level."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import journal
from agent.contract.events import EVENT_TYPES
from agent.control import request
from agent.journal import EVENTS, BacklogWatch, JournalFormatter, describe, under_journald
from agent.store import StateDir
from broker.local import LocalBroker
from tests.agent.harness import start_agent, status_when_up, watcher

ROOT = Path(__file__).resolve().parents[2]


def recorded_kinds() -> set[str]:
    """Every event kind the code records: every typed kind of the contract, ``append("…"``
    in the shell, and the two the outbox writes itself."""
    kinds = {"events_dropped", "outbox_reset", *EVENT_TYPES}
    for path in (ROOT / "agent").rglob("*.py"):
        if path.name == "outbox.py":  # its docstring example is not an event it records
            continue
        text = path.read_text()
        kinds |= set(re.findall(r'\bemit\(\s*"([a-z_]+)"', text))
        kinds |= set(re.findall(r'\bappend\(\s*"([a-z_]+)"', text))
    return kinds


def test_every_recorded_event_kind_has_its_line() -> None:
    kinds = recorded_kinds()
    assert {"lock_engaged", "shutdown_refused", "device_health", "relay_failed",
            "config_reloaded", "schedule_rejected"} <= kinds   # the scan finds them
    assert sorted(kinds - set(EVENTS)) == []


@pytest.mark.parametrize(("kind", "data", "level", "words"), [
    ("shutdown_refused", {"source": "button", "kind": "test", "title": "Kiểm tra"},
     logging.WARNING, ["button", "test", "Kiểm tra", "[window t-1]"]),
    ("lock_engaged", {"kind": "session", "title": "Họp", "start": "s", "end": "e", "cap": "c"},
     logging.INFO, ["session", "Họp", "[window t-1]"]),
    ("lock_released", {"reason": "hard_cap"}, logging.WARNING, ["hard_cap"]),
    ("power_step", {"device": "camera", "on": True, "outcome": "timeout", "elapsed_s": 20,
                    "reason": "window:t-1"}, logging.WARNING, ["camera", "on", "timeout"]),
    ("power_step", {"device": "camera", "on": False, "outcome": "done", "elapsed_s": 0,
                    "reason": "local:cli"}, logging.INFO, ["camera", "off", "done"]),
    ("device_health", {"device": "codec", "status": "fault", "reason": "no answer"},
     logging.ERROR, ["codec", "fault", "no answer"]),
    ("device_health", {"device": "codec", "status": "ok", "reason": ""}, logging.INFO,
     ["codec", "ok"]),
    ("relay_failed", {"device": "camera", "wanted": True, "actual": False, "error": "EIO"},
     logging.ERROR, ["camera", "switch on", "reads off", "EIO"]),
    ("relay_failed", {"device": "camera", "wanted": True, "error": "EIO"},
     logging.ERROR, ["unreadable"]),
    ("schedule_rejected", {"digest": "9f2c", "problems": ["windows.0.end: before start",
                                                          "site: not this room"]},
     logging.ERROR, ["9f2c", "2 problem(s)", "windows.0.end", "not this room"]),
    ("config_reload_refused", {"problems": ["devices.codec.relay.pin: changed"]},
     logging.WARNING, ["NOT reloaded", "devices.codec.relay.pin"]),
    ("window_ready", {"start": "09:00", "on_by_start": False,
                      "devices": {"codec": {"relay": True, "state": "on_silent"}}},
     logging.WARNING, ["NOT every device", "codec on_silent"]),
    ("broker_lost", {"broker": "10.0.0.1:8883"}, logging.WARNING, ["10.0.0.1:8883"]),
])
def test_lines_name_what_and_who_at_their_level(kind: str, data: dict[str, Any], level: int,
                                                 words: list[str]) -> None:
    got_level, line = describe(kind, data, window_id="t-1")
    assert got_level == level
    assert line.startswith(f"{kind}: ") and "\n" not in line
    for w in words:
        assert w in line, (w, line)


def test_window_id_from_the_data_and_missing_fields() -> None:
    _, line = describe("check_in", {"window_id": "s-9", "kind": "session"})
    assert line.endswith("[window s-9]")
    _, line = describe("power_sequence_cancelled", {"on": True})  # fields missing: no crash
    assert line.startswith("power_sequence_cancelled: power on sequence (-)")


def test_no_secret_and_no_second_line_ever() -> None:
    _, line = describe("something_new", {"password": "hunter2", "nested": {"api_token": "t0k",
                                         "ok": 1}, "text": "two\nlines " + "x" * 500})
    assert "hunter2" not in line and "t0k" not in line and "\n" not in line
    assert "password=***" in line and len(line) < 400


def record(level: int, msg: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("diemcau.x", level, __file__, 1, msg, None, exc_info)


def test_journal_lines_carry_their_priority_on_every_line_and_no_time() -> None:
    f = JournalFormatter()
    assert f.format(record(logging.ERROR, "e")) == "<3>diemcau.x: e"
    assert f.format(record(logging.WARNING, "w")) == "<4>diemcau.x: w"
    assert f.format(record(logging.INFO, "i")) == "<6>diemcau.x: i"
    assert f.format(record(logging.DEBUG, "d")) == "<7>diemcau.x: d"
    assert f.format(record(logging.CRITICAL, "c")) == "<2>diemcau.x: c"
    assert f.format(record(25, "between")) == "<6>diemcau.x: between"
    lines = f.format(record(logging.ERROR, "failed", exc=True)).splitlines()
    assert len(lines) > 3 and all(ln.startswith("<3>") for ln in lines)
    assert lines[-1] == "<3>ValueError: boom"


def test_journal_stream_must_be_our_stderr(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert under_journald(a, env)
        assert not under_journald(b, env)      # redirected elsewhere: not the journal
        assert not under_journald(a, {})
        assert not under_journald(a, {"JOURNAL_STREAM": "garbage"})
        assert not under_journald(io.StringIO(), env)


def test_outside_journald_lines_are_time_stamped() -> None:
    out = io.StringIO()
    handler = journal.setup_logging("INFO", stream=out, environ={})
    try:
        logging.getLogger("diemcau.t").warning("hello")
        logging.getLogger("diemcau.t").debug("not shown")
    finally:
        logging.getLogger().removeHandler(handler)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING diemcau.t: hello\n",
                        out.getvalue())


def test_backlog_is_said_when_it_builds_and_when_it_clears(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = BacklogWatch(warn_at=100)
    with caplog.at_level(logging.INFO, logger="diemcau.journal"):
        for pending in (5, 99, 100, 150, 199, 200, 120, 60, 49, 0, 100):
            watch.update(pending, 42.4)
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        (logging.WARNING, "outbox_backlog: 100 event(s) waiting for the broker, oldest 42 s old"),
        (logging.WARNING, "outbox_backlog: 200 event(s) waiting for the broker, oldest 42 s old"),
        (logging.INFO, "outbox_backlog_cleared: event backlog delivered (49 waiting)"),
        (logging.WARNING, "outbox_backlog: 100 event(s) waiting for the broker, oldest 42 s old"),
    ]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_bad_log_level_is_a_usage_error(how: str) -> None:
    env = {**os.environ, "DIEMCAU_LOG": "chatty" if how == "env" else "INFO"}
    args = ["--log-level", "loud"] if how == "flag" else []
    r = subprocess.run([sys.executable, "-m", "agent", *args, "check-config", "x.yaml"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "is not a log level; choose from DEBUG, INFO, WARNING, ERROR, CRITICAL" in r.stderr


BROKER_PASSWORD = "Br0ker-Pa55-zz9"
CODEC_PASSWORD = "C0dec-Pa55-qq7"


def secret_site(broker: LocalBroker, creds: Path, codec_password: str) -> str:
    return f"""\
site: {{id: xa-thu, name: "Xã Thử"}}
broker: {{host: 127.0.0.1, port: {broker.port}, keepalive_s: 5, credentials_file: {creds}}}
devices:
  codec:
    role: codec
    relay: {{pin: 26}}
    order: 1
    on_delay_s: 0
    driver: cisco_xapi
    serial: {{url: /dev/codec, baudrate: 115200}}
    settings: {{username: admin, password: "{codec_password}"}}
    poll_s: 1
    simulation: {{boot_s: 0.2}}
  camera: {{role: camera, relay: {{pin: 20}}, order: 2, on_delay_s: 0}}
timing: {{heartbeat_s: 30}}
"""


def test_a_run_under_journald_has_priorities_and_no_secret(
        tmp_path: Path, broker: LocalBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials.yaml"
    creds.write_text(f'username: xa-thu\npassword: "{BROKER_PASSWORD}"\n')
    cfg = tmp_path / "site.yaml"
    cfg.write_text(secret_site(broker, creds, CODEC_PASSWORD))
    state = tmp_path / "st"
    log_path = tmp_path / "stderr"
    with log_path.open("wb") as err:
        st = os.fstat(err.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        monkeypatch.setenv("DIEMCAU_LOG", "DEBUG")   # the most a log ever says
        with watcher(broker) as w:
            proc = start_agent(cfg, broker, state, stderr=err.fileno())
            try:
                status_when_up(state, proc)
                w.event("agent_started", timeout=20)
                assert request(StateDir(state).socket_path, "off")["ok"]
                # A reload the agent must refuse: only the codec's password changed.
                cfg.write_text(secret_site(broker, creds, CODEC_PASSWORD + "-new"))
                proc.send_signal(signal.SIGHUP)
                refused = w.event("config_reload_refused", timeout=20)
                assert refused["data"]["problems"] == [
                    "devices.codec.settings.password: changed, but the device's serial driver "
                    "and health poller are set up at start; restart the agent to apply it "
                    "(sudo systemctl restart diemcau-agent)"]
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(30) == 0
    text = log_path.read_text()
    lines = text.splitlines()
    assert len(lines) > 10
    bad = [ln for ln in lines if not re.match(r"<[0-7]>\S+: ", ln)]
    assert bad == []
    assert not any(re.search(r"\d\d:\d\d:\d\d", ln.split(": ", 1)[0]) for ln in lines)
    assert any(ln.startswith("<4>diemcau.journal: config_reload_refused: ") for ln in lines)
    assert any(ln.startswith("<6>diemcau.journal: power_sequence_started: ") for ln in lines)
    assert any(ln.startswith("<7>") for ln in lines)      # DEBUG really was on
    for secret in (BROKER_PASSWORD, CODEC_PASSWORD, CODEC_PASSWORD + "-new"):
        assert secret not in text
    for msg in w.events():
        assert BROKER_PASSWORD not in str(msg) and CODEC_PASSWORD not in str(msg)
